import SluiceCore

#if DEBUG
    extension FuzzTarget {
        /// A client's `traceparent` header as `TraceParent` reads it (the only parse a client's
        /// header gets before the tracer). Never a trap; an accepted header writes back in version
        /// 00's 55 bytes and reads again to itself; a job's envelope carries it unchanged.
        static func traceParent(_ bytes: UnsafeBufferPointer<UInt8>) {
            let string = text(bytes)
            guard let parsed = TraceParent(string) else { return }
            let written = parsed.text
            precondition(written.utf8.count == 55, "a traceparent writes back in other than 55 bytes")
            precondition(TraceParent(written) == parsed, "a traceparent does not read back")
            var envelope = JobEnvelope()
            envelope.trace = written
            precondition(JobEnvelope(decoding: envelope.encoded).trace == written, "the envelope loses the trace")
        }
    }
#endif
