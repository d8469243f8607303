import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a server could not listen, for a message that says what to do.
public enum ListenError {
    /// Whether `error` is a bind refused because the address is in use (EADDRINUSE): another
    /// process, often another `sluice up`, holds the port.
    public static func isAddressInUse(_ error: any Error) -> Bool {
        (error as? IOError)?.errnoCode == EADDRINUSE
    }
}
