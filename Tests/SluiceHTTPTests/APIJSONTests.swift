import Foundation
import Testing

@testable import SluiceCore
@testable import SluiceHTTP
import SluiceStore

/// The Codable bodies: a body that does not decode is a 400 naming the field, unknown fields are
/// refused, partial updates tell left-out from null, and answers keep their nulls.
@Suite struct APIJSONTests {
    func decodeError<T: Decodable>(_ type: T.Type, _ json: String) -> APIError? {
        do {
            _ = try APIJSON.decode(T.self, from: Data(json.utf8))
            return nil
        } catch {
            return error as? APIError
        }
    }

    @Test func aWrongTypeNamesTheFieldByItsPath() throws {
        let tenant = try #require(decodeError(KeysController.Create.self, #"{"tenant": 5, "scopes": ["read"]}"#))
        #expect(tenant.status == .badRequest && tenant.param == "tenant" && tenant.message == "'tenant' must be a string")
        let rate = try #require(decodeError(KeysController.Create.self, #"{"tenant": "x", "scopes": [], "limits": {"submit_rate": "fast"}}"#))
        #expect(rate.param == "limits.submit_rate" && rate.message == "'limits.submit_rate' must be a number")
        let flag = try #require(decodeError(KeysController.Create.self, #"{"tenant": "x", "scopes": [], "limits": {"max_queued": true}}"#))
        #expect(flag.param == "limits.max_queued")
        let element = try #require(decodeError(KeysController.Create.self, #"{"tenant": "x", "scopes": ["read", 5]}"#))
        #expect(element.param == "scopes" && element.message == "'scopes[1]' must be a string")
        let null = try #require(decodeError(KeysController.Update.self, #"{"limits": null}"#))
        #expect(null.param == "limits" && null.message == "'limits' must be an object")
    }

    @Test func aMissingFieldAndABrokenBodyAreNamed() throws {
        let missing = try #require(decodeError(KeysController.Create.self, #"{"scopes": ["read"]}"#))
        #expect(missing.param == "tenant" && missing.message == "'tenant' is required")
        let broken = try #require(decodeError(KeysController.Create.self, #"{"tenant": "#))
        #expect(broken.param == nil && broken.message == "the body is not valid JSON")
        let array = try #require(decodeError(KeysController.Create.self, "[1, 2]"))
        #expect(array.message == "the body must be a JSON object")
    }

    @Test func unknownFieldsAreRefusedWithTheirPath() throws {
        let top = try #require(decodeError(KeysController.Create.self, #"{"tenant": "x", "scopes": [], "role": "boss", "age": 1}"#))
        #expect(top.param == "age" && top.message == "unknown field 'age'")
        let nested = try #require(decodeError(KeysController.Update.self, #"{"limits": {"max_queud": 5}}"#))
        #expect(nested.param == "limits.max_queud")
        let batch = try #require(decodeError(BatchesController.CreateBatch.self, #"{"input_file_id": "f", "endpoint": "/v1/x", "completion_window": "24h", "extra": 1}"#))
        #expect(batch.message == "unknown parameter 'extra'")
    }

    @Test func aLimitLeftOutStaysANullOneGoesAndAGivenOneReplaces() throws {
        let current = KeyLimits(submitRate: 5, maxQueued: 100, maxPriority: 3)
        let patch = try APIJSON.decode(KeysController.Update.self, from: Data(#"{"limits": {"max_queued": null, "max_priority": 7}}"#.utf8))
        let limits = try #require(try patch.limits?.applied(over: current))
        #expect(limits.submitRate == 5)
        #expect(limits.maxQueued == nil)
        #expect(limits.maxPriority == 7)
    }

    @Test func aFractionOrAHugeNumberIsNotAWholeLimit() throws {
        for json in [#"{"limits": {"max_queued": 1.5}}"#, #"{"limits": {"max_priority": 1e300}}"#] {
            let patch = try APIJSON.decode(KeysController.Update.self, from: Data(json.utf8))
            #expect(throws: APIError.self, "\(json)") { try patch.limits?.applied(over: KeyLimits()) }
        }
    }

    @Test func answersKeepTheirNullsAndLeaveOutWhatIsAbsent() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let secret = WebhooksController.Secret(key: "sk_1", WebhookSecretRecord(keyID: 1, current: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        #expect(
            String(decoding: try encoder.encode(secret), as: UTF8.self)
                == #"{"key":"sk_1","kind":"hmac","object":"webhook_secret","previous":null,"previous_kind":null,"previous_until":null,"#
                + #""public_key":null,"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#)
        let error = APIError.Body(error: .init(type: "not_found", message: "no such job", param: nil, jobID: nil))
        #expect(String(decoding: try encoder.encode(error), as: UTF8.self) == #"{"error":{"message":"no such job","type":"not_found"}}"#)
    }
}
