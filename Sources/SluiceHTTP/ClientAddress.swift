import HTTPTypes
import Hummingbird
import SluiceCore

/// Who sent a request: the one place the API decides whether to believe `X-Forwarded-For`
/// (the access log and the dashboard's login limit both ask it).
///
/// With `server.trusted_proxies`, the header is read only from a trusted peer, and the client is
/// its right-most untrusted address (`TrustedProxies.clientAddress`). Without it, the old
/// `dashboard.trust_forwarded_proto` still means what it did: every peer's last `X-Forwarded-For`
/// entry is believed (a proxy that overwrites the header is then required in front).
public struct ClientAddress: Sendable {
    public var trusted: TrustedProxies
    /// `dashboard.trust_forwarded_proto` with no `trusted_proxies`: any peer's last hop is believed.
    public var anyPeerLastHop: Bool

    public init(trusted: TrustedProxies = .none, anyPeerLastHop: Bool = false) {
        self.trusted = trusted
        self.anyPeerLastHop = anyPeerLastHop
    }

    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    /// The warning to log once at startup when the access log shows an address any direct client
    /// may choose (`dashboard.trust_forwarded_proto` with no `server.trusted_proxies`); nil otherwise.
    public func startupWarning(accessLog: Bool) -> String? {
        guard accessLog, anyPeerLastHop, trusted.isEmpty else { return nil }
        return "server.access_log with dashboard.trust_forwarded_proto and no server.trusted_proxies: the logged client address is the last X-Forwarded-For entry of any peer, so a client connecting directly chooses it; set server.trusted_proxies to your proxies' addresses"
    }

    /// The client's address for `request` (the peer's when nothing forwarded is believed);
    /// "unknown" for a channel without a peer address.
    public func resolve(_ headers: HTTPFields, peer: String?) -> String {
        if trusted.isEmpty, anyPeerLastHop, let forwarded = headers[Self.forwardedFor],
            let last = forwarded.split(separator: ",").last, let address = TrustedProxies.Address(last)
        {
            return address.description
        }
        return trusted.clientAddress(peer: peer, forwardedFor: headers[Self.forwardedFor]) ?? "unknown"
    }

    func resolve(_ request: Request, _ context: SluiceRequestContext) -> String {
        resolve(request.headers, peer: context.peer)
    }
}
