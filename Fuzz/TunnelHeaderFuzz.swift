// libFuzzer entry point over the tunnel header parsers. Fuzz/run.sh compiles this file
// together with Sources/TunnelProtocol as one module, so the parser is instrumented and
// internal helpers are reachable. Any violated invariant traps, which libFuzzer reports.

private let fuzzKey = try! TunnelKey(bytes: Array(0..<32))  // the key of the seed corpus
/// The seeds' named requests use "site-a" (the key above); "site-b" is another gateway's key.
private let fuzzKeyring = try! TunnelKeyring([
    TunnelKeyring.Entry(name: KeyName("site-a")!, key: fuzzKey),
    TunnelKeyring.Entry(name: KeyName("site-b")!, key: try! TunnelKey(bytes: Array(100..<132))),
])
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
        require(consumed == TunnelHeader.requestLength(keyName: request.keyName) && consumed <= size, "consumed \(consumed) of \(size)")
        if let name = request.keyName {
            // A name that parsed is a name a key file could have.
            require(KeyName.problem(name.description) == nil && name.count <= KeyName.maximumLength, "accepted key name \(name)")
        }
        let macOffset = request.macOffset
        // Rebuilding from the parsed fields must give back exactly the bytes the MAC covers:
        // otherwise a header could verify while meaning something else.
        withUnsafeTemporaryAllocation(byteCount: macOffset, alignment: 8) { rebuilt in
            TunnelHeader.writeAuthenticatedPart(request, into: rebuilt)
            require(rebuilt.elementsEqual(input.prefix(macOffset)), "parse/encode mismatch")
        }
        // The server's path: the key the request names (or whose id it carries), then verify.
        // A malformed or unknown name is refused before any MAC is computed.
        let entry: TunnelKeyring.Entry
        switch fuzzKeyring.lookup(request) {
        case .success(let i):
            entry = fuzzKeyring.entries[i]
            if let name = request.keyName { require(entry.name == name, "lookup returned \(entry.name) for \(name)") }
        case .failure(let rejection):
            require(rejection.code == .notAuthorized, "lookup refused with \(rejection.code)")
            entry = TunnelKeyring.Entry(name: KeyName("site-a")!, key: fuzzKey)
        }
        let verdict = TunnelHeader.verify(request, key: entry.key, now: fuzzNow,
                                          replayCache: ReplayCache(capacity: 1))
        if case .success = verdict {
            // Only a header whose MAC is genuinely right, with the key it names, may pass.
            let (high, low) = TunnelHeader.mac(key: entry.key, over: UnsafeRawBufferPointer(rebasing: input[..<macOffset]))
            let sent = UnsafeRawBufferPointer(rebasing: input[macOffset..<consumed])
            require(sent.be64(0) == high && sent.be64(8) == low, "verified without a valid MAC")
            require(request.keyID == entry.key.id, "verified with a key id that is not the named key's")
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
