import Foundation
import SluiceCore

#if DEBUG
    @testable import SluiceHTTP

    extension FuzzTarget {
        /// A bearer token and a JWKS document as Sluice reads them before any signature is
        /// checked (issue 18): the token's header and claims (jwt-kit's parser, our `TokenClaims`),
        /// its times through `JWTVerifier.checkTimes`, and the bytes as a JWKS document
        /// (`LenientJWKS`). Never a trap; a refused time is one of the named refusals.
        static func jwt(_ bytes: UnsafeBufferPointer<UInt8>) {
            let input = Array(bytes)
            _ = JWTVerifier.looksLikeJWT(text(bytes))
            if let parsed = try? JWTVerifier.unverified(input) {
                for value in parsed.claims.values.values { _ = value.strings }
                do {
                    let exp = try JWTVerifier.checkTimes(parsed.claims, now: 1_767_225_600, leeway: .seconds(30))
                    precondition(JWTVerifier.timeRange.contains(exp), "an exp outside the range was accepted")
                } catch {
                    switch error {
                    case .claimMissing, .invalidTime, .expired, .notYetValid: break
                    default: preconditionFailure("checkTimes refused with \(error)")
                    }
                }
            }
            if let jwks = try? JSONDecoder().decode(LenientJWKS.self, from: Data(input)) {
                precondition(jwks.keys.count <= 1000, "a JWKS document kept more than 1000 keys")
            }
        }
    }
#endif
