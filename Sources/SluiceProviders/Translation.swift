import Foundation
import SluiceCore

/// Rewrites a request written for one provider's API so that another serves it, and its answer
/// back: for routes whose targets are of different kinds (an OpenAI-shaped job that falls back
/// to Anthropic, or an A/B split across them).
///
/// What is translated, OpenAI chat completions ⇄ Anthropic messages:
/// - `model` becomes the target lane's model;
/// - system (and developer) messages ⇄ Anthropic's top-level `system`;
/// - message content as a string, or as text parts; images given by URL ⇄ `image` blocks with a
///   URL source;
/// - `max_tokens` (or `max_completion_tokens`) ⇄ `max_tokens` (Anthropic requires it: 4096 when
///   the request has none); `stop` ⇄ `stop_sequences`; `temperature`, `top_p`; `metadata.user_id`
///   ⇄ `user`;
/// - the answer: text, finish reason ⇄ stop reason, usage.
///
/// Tools, audio, `n` > 1 and streaming are not translated: such a request is refused with
/// `TranslationError` (the job fails, not retryable), rather than sent with parts dropped.
public enum Translation {
    public struct TranslationError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// The body to send to a provider of kind `to`, from `body` written for kind `from`, with its
    /// `model` set to `model` (when given). Unchanged when nothing needs to change.
    public static func request(
        _ body: [UInt8], from: ProviderKind, to: ProviderKind, model: String?
    ) throws(TranslationError) -> [UInt8] {
        if from == to || from == .huggingface || to == .huggingface {
            guard from == to else {
                throw TranslationError(description: "cannot translate a \(from.rawValue) request for a \(to.rawValue) provider")
            }
            // Hugging Face names the model in the path, not the body.
            guard let model, to != .huggingface else { return body }
            return try settingModel(body, to: model)
        }
        let object = try decode(body, "request")
        if object["stream"] as? Bool == true {
            throw TranslationError(description: "a streaming request cannot be queued")
        }
        var translated = from == .openai ? try openAIToAnthropic(object) : try anthropicToOpenAI(object)
        if let model { translated["model"] = model }
        return try encode(translated)
    }

    /// `body`, a JSON object, with its top-level `model` set to `model` and every other byte as
    /// the client sent it: the value replaced in place, or the member added first. This runs
    /// for every routed job and facade call; decoding and re-encoding the whole request through
    /// Foundation cost more than the rest of the call's own work.
    static func settingModel(_ body: [UInt8], to model: String) throws(TranslationError) -> [UInt8] {
        let found = body.withUnsafeBufferPointer { bytes -> (value: JSONScanner.Value?, models: Int, members: Int, valid: Bool) in
            var value: JSONScanner.Value?
            var models = 0
            var members = 0
            var scanner = JSONScanner(bytes)
            do {
                try scanner.objectMembers { (key, member) throws(Never) in
                    members += 1
                    if JSONScanner.stringToken(bytes, key, equals: "model") {
                        models += 1
                        value = member
                    }
                }
            } catch {
                return (nil, 0, 0, false)
            }
            return (value, models, members, true)
        }
        guard found.valid else { throw TranslationError(description: "the request is not a JSON object") }
        var encoded: [UInt8] = []
        JSONObjectWriter.appendString(model, to: &encoded)
        if let value = found.value, found.models == 1 {
            if value.kind == .string, body[value.range].elementsEqual(encoded) { return body }
            return Array(body[..<value.range.lowerBound]) + encoded + Array(body[value.range.upperBound...])
        }
        guard found.models == 0, let open = body.firstIndex(of: UInt8(ascii: "{")) else {
            // A repeated `model` key: which one a provider reads is theirs to say; decoded, the
            // object has one.
            var object = try decode(body, "request")
            object["model"] = model
            return try encode(object)
        }
        var written = Array(body[...open])
        written += Array(#""model":"#.utf8) + encoded
        if found.members > 0 { written.append(UInt8(ascii: ",")) }
        written += body[(open + 1)...]
        return written
    }

    /// The answer as a client of kind `client` expects it, from `body` answered by a provider of
    /// kind `provider`. Unchanged when the kinds match (or the body is not a JSON object).
    public static func response(_ body: [UInt8], provider: ProviderKind, client: ProviderKind) -> [UInt8] {
        guard provider != client, let object = try? decode(body, "answer") else { return body }
        let translated: [String: Any]
        switch (provider, client) {
        case (.anthropic, .openai): translated = anthropicAnswerToOpenAI(object)
        case (.openai, .anthropic): translated = openAIAnswerToAnthropic(object)
        default: return body
        }
        return (try? encode(translated)) ?? body
    }

    // MARK: - Requests

    private static let sharedKeys = ["temperature", "top_p"]

    static func openAIToAnthropic(_ request: [String: Any]) throws(TranslationError) -> [String: Any] {
        for unsupported in ["tools", "tool_choice", "functions", "audio", "modalities"] where request[unsupported] != nil {
            throw TranslationError(description: "'\(unsupported)' cannot be translated to Anthropic")
        }
        if let n = request["n"] as? Int, n > 1 { throw TranslationError(description: "'n' > 1 cannot be translated to Anthropic") }
        guard let messages = request["messages"] as? [[String: Any]] else {
            throw TranslationError(description: "an OpenAI chat request needs 'messages' to be translated")
        }
        var out: [String: Any] = [:]
        var system: [String] = []
        var turns: [[String: Any]] = []
        for (index, message) in messages.enumerated() {
            let role = message["role"] as? String ?? ""
            switch role {
            case "system", "developer":
                system.append(try text(of: message["content"], at: index))
            case "user", "assistant":
                turns.append(["role": role, "content": try anthropicContent(message["content"], at: index)])
            default:
                throw TranslationError(description: "messages[\(index)]: role '\(role)' cannot be translated to Anthropic")
            }
        }
        if !system.isEmpty { out["system"] = system.joined(separator: "\n\n") }
        out["messages"] = turns
        out["max_tokens"] = request["max_completion_tokens"] ?? request["max_tokens"] ?? 4096
        if let stop = request["stop"] as? String { out["stop_sequences"] = [stop] }
        if let stop = request["stop"] as? [String] { out["stop_sequences"] = stop }
        if let user = request["user"] as? String { out["metadata"] = ["user_id": user] }
        for key in sharedKeys where request[key] != nil { out[key] = request[key] }
        return out
    }

    static func anthropicToOpenAI(_ request: [String: Any]) throws(TranslationError) -> [String: Any] {
        for unsupported in ["tools", "tool_choice", "thinking"] where request[unsupported] != nil {
            throw TranslationError(description: "'\(unsupported)' cannot be translated to OpenAI")
        }
        guard let messages = request["messages"] as? [[String: Any]] else {
            throw TranslationError(description: "an Anthropic messages request needs 'messages' to be translated")
        }
        var turns: [[String: Any]] = []
        if let system = request["system"] {
            turns.append(["role": "system", "content": try text(of: system, at: -1)])
        }
        for (index, message) in messages.enumerated() {
            let role = message["role"] as? String ?? ""
            guard role == "user" || role == "assistant" else {
                throw TranslationError(description: "messages[\(index)]: role '\(role)' cannot be translated to OpenAI")
            }
            turns.append(["role": role, "content": try openAIContent(message["content"], at: index)])
        }
        var out: [String: Any] = ["messages": turns]
        if let max = request["max_tokens"] { out["max_tokens"] = max }
        if let stop = request["stop_sequences"] as? [String] { out["stop"] = stop }
        if let user = (request["metadata"] as? [String: Any])?["user_id"] as? String { out["user"] = user }
        for key in sharedKeys where request[key] != nil { out[key] = request[key] }
        return out
    }

    /// Text content: a string, or text parts/blocks joined.
    private static func text(of content: Any?, at index: Int) throws(TranslationError) -> String {
        if let string = content as? String { return string }
        if let parts = content as? [[String: Any]] {
            var texts: [String] = []
            for part in parts {
                guard part["type"] as? String == "text", let text = part["text"] as? String else {
                    throw TranslationError(description: "\(where_(index)): only text can be translated here")
                }
                texts.append(text)
            }
            return texts.joined(separator: "\n")
        }
        throw TranslationError(description: "\(where_(index)): content must be a string or a list of parts")
    }

    private static func where_(_ index: Int) -> String { index < 0 ? "system" : "messages[\(index)]" }

    private static func anthropicContent(_ content: Any?, at index: Int) throws(TranslationError) -> Any {
        if let string = content as? String { return string }
        guard let parts = content as? [[String: Any]] else {
            throw TranslationError(description: "messages[\(index)]: content must be a string or a list of parts")
        }
        var blocks: [[String: Any]] = []
        for part in parts {
            switch part["type"] as? String {
            case "text": blocks.append(["type": "text", "text": part["text"] ?? ""])
            case "image_url":
                guard let url = (part["image_url"] as? [String: Any])?["url"] as? String ?? part["image_url"] as? String else {
                    throw TranslationError(description: "messages[\(index)]: an image_url part needs a url")
                }
                if url.hasPrefix("data:"), let comma = url.firstIndex(of: ","), let semicolon = url.firstIndex(of: ";") {
                    let mediaType = String(url[url.index(url.startIndex, offsetBy: 5)..<semicolon])
                    blocks.append([
                        "type": "image",
                        "source": ["type": "base64", "media_type": mediaType, "data": String(url[url.index(after: comma)...])],
                    ])
                } else {
                    blocks.append(["type": "image", "source": ["type": "url", "url": url]])
                }
            default:
                throw TranslationError(description: "messages[\(index)]: a '\(part["type"] ?? "?")' part cannot be translated to Anthropic")
            }
        }
        return blocks
    }

    private static func openAIContent(_ content: Any?, at index: Int) throws(TranslationError) -> Any {
        if let string = content as? String { return string }
        guard let blocks = content as? [[String: Any]] else {
            throw TranslationError(description: "messages[\(index)]: content must be a string or a list of blocks")
        }
        var parts: [[String: Any]] = []
        for block in blocks {
            switch block["type"] as? String {
            case "text": parts.append(["type": "text", "text": block["text"] ?? ""])
            case "image":
                let source = block["source"] as? [String: Any] ?? [:]
                if source["type"] as? String == "url", let url = source["url"] as? String {
                    parts.append(["type": "image_url", "image_url": ["url": url]])
                } else if let media = source["media_type"] as? String, let data = source["data"] as? String {
                    parts.append(["type": "image_url", "image_url": ["url": "data:\(media);base64,\(data)"]])
                } else {
                    throw TranslationError(description: "messages[\(index)]: an image block needs a url or base64 source")
                }
            default:
                throw TranslationError(description: "messages[\(index)]: a '\(block["type"] ?? "?")' block cannot be translated to OpenAI")
            }
        }
        return parts
    }

    // MARK: - Answers

    static func anthropicAnswerToOpenAI(_ answer: [String: Any]) -> [String: Any] {
        let blocks = answer["content"] as? [[String: Any]] ?? []
        let text = blocks.compactMap { $0["type"] as? String == "text" ? $0["text"] as? String : nil }.joined()
        let usage = answer["usage"] as? [String: Any] ?? [:]
        let input = usage["input_tokens"] as? Int ?? 0
        let output = usage["output_tokens"] as? Int ?? 0
        let finish: String =
            switch answer["stop_reason"] as? String {
            case "max_tokens": "length"
            case "tool_use": "tool_calls"
            default: "stop"
            }
        return [
            "id": answer["id"] ?? "", "object": "chat.completion", "created": Int(Date().timeIntervalSince1970),
            "model": answer["model"] ?? "",
            "choices": [["index": 0, "message": ["role": "assistant", "content": text], "finish_reason": finish]],
            "usage": ["prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output],
        ]
    }

    static func openAIAnswerToAnthropic(_ answer: [String: Any]) -> [String: Any] {
        let choice = (answer["choices"] as? [[String: Any]])?.first ?? [:]
        let text = (choice["message"] as? [String: Any])?["content"] as? String ?? ""
        let usage = answer["usage"] as? [String: Any] ?? [:]
        let stop: String =
            switch choice["finish_reason"] as? String {
            case "length": "max_tokens"
            case "tool_calls": "tool_use"
            default: "end_turn"
            }
        return [
            "id": answer["id"] ?? "", "type": "message", "role": "assistant", "model": answer["model"] ?? "",
            "content": [["type": "text", "text": text]], "stop_reason": stop, "stop_sequence": NSNull(),
            "usage": ["input_tokens": usage["prompt_tokens"] ?? 0, "output_tokens": usage["completion_tokens"] ?? 0],
        ]
    }

    // MARK: - JSON

    private static func decode(_ body: [UInt8], _ what: String) throws(TranslationError) -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw TranslationError(description: "the \(what) is not a JSON object")
        }
        return object
    }

    private static func encode(_ object: [String: Any]) throws(TranslationError) -> [UInt8] {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            throw TranslationError(description: "the translated request could not be encoded")
        }
        return Array(data)
    }
}
