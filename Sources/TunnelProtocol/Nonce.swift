/// 128 random bits that make each request unique; stored inline so the replay cache
/// never allocates per entry.
public struct Nonce: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// SystemRandomNumberGenerator reads getrandom(2) on Linux: cryptographically secure.
    public static func random() -> Nonce {
        var rng = SystemRandomNumberGenerator()
        return Nonce(high: rng.next(), low: rng.next())
    }

    public var description: String {
        let h = String(high, radix: 16), l = String(low, radix: 16)
        return String(repeating: "0", count: 16 - h.count) + h + String(repeating: "0", count: 16 - l.count) + l
    }
}
