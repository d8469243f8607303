/// The providers Sluice can call: the API a provider speaks, and the API a job's request is
/// written in (`JobEnvelope.format`).
public enum ProviderKind: String, Sendable, Hashable, CaseIterable, Codable {
    /// OpenAI, and any OpenAI-compatible server (vLLM, Ollama, llama.cpp, TGI/TEI): bearer auth.
    case openai
    /// Anthropic: `x-api-key` and `anthropic-version`.
    case anthropic
    /// Hugging Face Inference: bearer auth.
    case huggingface
}
