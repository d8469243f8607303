import Foundation
import SluiceProviders
import Testing

private func object(_ bytes: [UInt8]) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
}

@Suite struct TranslationTests {
    @Test func anOpenAIChatRequestBecomesAnAnthropicMessagesRequest() throws {
        let body = Array(
            #"""
            {"model": "gpt-4o-mini", "messages": [
              {"role": "system", "content": "Be brief."},
              {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
              {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                           {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                                           {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
              {"role": "assistant", "content": "Un chat."},
              {"role": "user", "content": "Sure?"}],
             "max_completion_tokens": 64, "stop": "END", "temperature": 0.2, "user": "u-7"}
            """#.utf8)
        let out = try object(try Translation.request(body, from: .openai, to: .anthropic, model: "claude-3-5-haiku"))
        #expect(out["model"] as? String == "claude-3-5-haiku")
        #expect(out["system"] as? String == "Be brief.\n\nAnswer in French.")
        #expect(out["max_tokens"] as? Int == 64)
        #expect(out["stop_sequences"] as? [String] == ["END"])
        #expect(out["temperature"] as? Double == 0.2)
        #expect((out["metadata"] as? [String: Any])?["user_id"] as? String == "u-7")
        let messages = try #require(out["messages"] as? [[String: Any]])
        #expect(messages.map { $0["role"] as? String } == ["user", "assistant", "user"])
        let blocks = try #require(messages[0]["content"] as? [[String: Any]])
        #expect(blocks.count == 3)
        #expect((blocks[1]["source"] as? [String: Any])?["url"] as? String == "https://example.com/cat.png")
        #expect((blocks[2]["source"] as? [String: Any])?["media_type"] as? String == "image/png")
        #expect((blocks[2]["source"] as? [String: Any])?["data"] as? String == "iVBOR")
        // Anthropic requires max_tokens: a default when the OpenAI request has none.
        let bare = try object(
            try Translation.request(Array(#"{"messages": [{"role": "user", "content": "hi"}]}"#.utf8), from: .openai, to: .anthropic, model: nil))
        #expect(bare["max_tokens"] as? Int == 4096)
    }

    @Test func anAnthropicRequestBecomesAnOpenAIChatRequest() throws {
        let body = Array(
            #"{"model": "claude", "system": "Be brief.", "max_tokens": 100, "stop_sequences": ["X"], "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}"#
                .utf8)
        let out = try object(try Translation.request(body, from: .anthropic, to: .openai, model: "gpt-4o"))
        #expect(out["model"] as? String == "gpt-4o" && out["max_tokens"] as? Int == 100 && out["stop"] as? [String] == ["X"])
        let messages = try #require(out["messages"] as? [[String: Any]])
        #expect(messages[0]["role"] as? String == "system" && messages[0]["content"] as? String == "Be brief.")
        #expect((messages[1]["content"] as? [[String: Any]])?.first?["text"] as? String == "hi")
    }

    @Test func answersAreTranslatedBackWithTheirUsage() throws {
        let anthropic = Array(
            #"{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"Bonjour"}],"stop_reason":"max_tokens","usage":{"input_tokens":12,"output_tokens":5}}"#
                .utf8)
        let chat = try object(Translation.response(anthropic, provider: .anthropic, client: .openai))
        #expect(chat["object"] as? String == "chat.completion" && chat["id"] as? String == "msg_1")
        let choice = try #require((chat["choices"] as? [[String: Any]])?.first)
        #expect((choice["message"] as? [String: Any])?["content"] as? String == "Bonjour")
        #expect(choice["finish_reason"] as? String == "length")
        #expect((chat["usage"] as? [String: Any])?["total_tokens"] as? Int == 17)

        let openai = Array(
            #"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#
                .utf8)
        let message = try object(Translation.response(openai, provider: .openai, client: .anthropic))
        #expect(message["type"] as? String == "message" && message["stop_reason"] as? String == "end_turn")
        #expect(((message["content"] as? [[String: Any]])?.first)?["text"] as? String == "Hi")
        #expect((message["usage"] as? [String: Any])?["output_tokens"] as? Int == 1)
        // Same kind: byte for byte.
        #expect(Translation.response(openai, provider: .openai, client: .openai) == openai)
    }

    @Test func whatCannotBeTranslatedIsRefusedNotDropped() throws {
        for (body, says) in [
            (#"{"messages": [{"role": "user", "content": "x"}], "tools": []}"#, "'tools'"),
            (#"{"messages": [{"role": "tool", "content": "x"}]}"#, "role 'tool'"),
            (#"{"messages": [{"role": "user", "content": "x"}], "stream": true}"#, "streaming"),
            (#"{"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}"#, "'input_audio'"),
            (#"[1]"#, "not a JSON object"),
        ] {
            #expect {
                try Translation.request(Array(body.utf8), from: .openai, to: .anthropic, model: nil)
            } throws: { error in
                "\(error)".contains(says)
            }
        }
        #expect(throws: Translation.TranslationError.self) {
            try Translation.request(Array("{}".utf8), from: .openai, to: .huggingface, model: nil)
        }
    }

    @Test func aRoutedJobOfTheSameKindOnlyGetsTheLanesModel() throws {
        let body = Array(#"{"model": "smart", "messages": []}"#.utf8)
        let out = try object(try Translation.request(body, from: .openai, to: .openai, model: "gpt-4o-mini"))
        #expect(out["model"] as? String == "gpt-4o-mini")
        let already = Array(#"{"model": "gpt-4o-mini", "messages": []}"#.utf8)
        #expect(try Translation.request(already, from: .openai, to: .openai, model: "gpt-4o-mini") == already)
    }
}
