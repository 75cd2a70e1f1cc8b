// libFuzzer entry point over the tunnel header parsers. Fuzz/run.sh compiles this file
// together with Sources/TunnelProtocol as one module, so the parser is instrumented and
// internal helpers are reachable. Any violated invariant traps, which libFuzzer reports.

private let fuzzKey = try! TunnelKey(bytes: Array(0..<32))  // the key of the seed corpus
private let fuzzNow: UInt64 = 1_700_000_000

private func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("invariant violated: \(message())") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func tunnelHeaderFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: size)

    switch TunnelHeader.parseRequest(input) {
    case .needMore(let total):
        require(total > size && total <= TunnelHeader.maximumLength && total % 4 == 0, "needMore(\(total)) for \(size)")
    case .invalid:
        break
    case .request(let request, let consumed):
        require(consumed == TunnelHeader.requestLength && consumed <= size, "consumed \(consumed) of \(size)")
        // Rebuilding from the parsed fields must give back exactly the bytes the MAC covers:
        // otherwise a header could verify while meaning something else.
        withUnsafeTemporaryAllocation(byteCount: TunnelHeader.AuthTLV.macOffset, alignment: 8) { rebuilt in
            TunnelHeader.writeAuthenticatedPart(request, into: rebuilt)
            require(rebuilt.elementsEqual(input.prefix(TunnelHeader.AuthTLV.macOffset)), "parse/encode mismatch")
        }
        let verdict = TunnelHeader.verify(request, key: fuzzKey, now: fuzzNow,
                                          replayCache: ReplayCache(capacity: 1))
        if case .success = verdict {
            // Only a header whose MAC is genuinely right may pass.
            let (high, low) = TunnelHeader.mac(key: fuzzKey, over: UnsafeRawBufferPointer(rebasing: input[..<TunnelHeader.AuthTLV.macOffset]))
            let sent = UnsafeRawBufferPointer(rebasing: input[TunnelHeader.AuthTLV.macOffset..<consumed])
            require(sent.be64(0) == high && sent.be64(8) == low, "verified without a valid MAC")
        }
    }

    switch TunnelHeader.parseReply(input) {
    case .needMore(let total):
        require(total > size && total <= TunnelHeader.maximumLength, "reply needMore(\(total)) for \(size)")
    case .success(let consumed), .failure(_, let consumed):
        require(consumed >= 4 && consumed <= size && consumed % 4 == 0, "reply consumed \(consumed) of \(size)")
    case .invalid:
        break
    }
    return 0
}
