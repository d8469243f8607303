import Foundation
import HTTPTypes
import Hummingbird

extension Response {
    /// A JSON answer from a Foundation object (keys sorted), for the batch objects SluiceBatch
    /// still renders as one (`BatchDocument`); every other body is a Codable type
    /// (`ResponseEncodable`), or bytes written directly on the hot paths (`JobDocument`).
    static func json(_ object: Any, status: HTTPResponse.Status = .ok) throws -> Response {
        let body = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
