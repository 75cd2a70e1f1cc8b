#if canImport(Glibc)
import Glibc
#endif

/// The keys a tunnel server accepts, one per gateway, each under its name (the key id a
/// gateway sends in its Key Name TLV), with the policy that goes with it. A request that names
/// a key is checked with that key alone; one that names none (the single-key form, or a
/// gateway older than key names) with the key whose hash id it carries.
public struct TunnelKeyring: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var name: KeyName
        public var key: TunnelKey
        /// Open connections this key may hold at once; nil: only the relay's max_connections.
        public var maxConnections: Int?
        /// Destination prefixes opened or closed for this key, on top of the listener's.
        public var allow: [IPPrefix] = []
        public var deny: [IPPrefix] = []

        public init(name: KeyName, key: TunnelKey, maxConnections: Int? = nil) {
            self.name = name
            self.key = key
            self.maxConnections = maxConnections
        }

        /// Keys compare by id (a hash of the key): a file whose key changed is another key.
        public static func == (a: Entry, b: Entry) -> Bool {
            a.name == b.name && a.key.id == b.key.id && a.maxConnections == b.maxConnections && a.allow == b.allow && a.deny == b.deny
        }
    }

    /// Sorted by name.
    public let entries: [Entry]
    private let byName: [KeyName: Int]
    private let byID: [UInt32: Int]

    /// Two entries with one name, or two names for one key (which would make the gateways
    /// that share it impossible to tell apart or revoke alone), are refused.
    public init(_ entries: [Entry]) throws(TunnelKeyringError) {
        let sorted = entries.sorted { $0.name < $1.name }
        var byName: [KeyName: Int] = [:], byID: [UInt32: Int] = [:]
        for (i, e) in sorted.enumerated() {
            if byName[e.name] != nil { throw .duplicateName(e.name.description) }
            if let other = byID[e.key.id] { throw .sameKey(sorted[other].name.description, e.name.description) }
            byName[e.name] = i
            byID[e.key.id] = i
        }
        self.entries = sorted
        self.byName = byName
        self.byID = byID
    }

    public static func == (a: TunnelKeyring, b: TunnelKeyring) -> Bool { a.entries == b.entries }

    /// The entry a request is to be checked with: by its Key Name TLV, else by its key id.
    /// Unknown either way is Not Authorized. Allocates nothing.
    public func lookup(_ request: ConnectRequest) -> Result<Int, Rejection> {
        if let name = request.keyName {
            guard let i = byName[name] else { return .failure(Rejection(.notAuthorized, .unknownKeyName(name))) }
            return .success(i)
        }
        guard let i = byID[request.keyID] else { return .failure(Rejection(.notAuthorized, .unknownKey(id: request.keyID))) }
        return .success(i)
    }
}

public enum TunnelKeyringError: Error, Equatable, CustomStringConvertible {
    case duplicateName(String)
    case sameKey(String, String)
    case cannotReadDirectory(path: String, errno: Int32)
    case badFileName(path: String, problem: String)
    case key(TunnelKeyError)

    public var description: String {
        switch self {
        case .duplicateName(let n): return "key id \"\(n)\" is given twice"
        case .sameKey(let a, let b):
            return "keys \"\(a)\" and \"\(b)\" are the same key: give each gateway a key of its own (`openssl rand -hex 32 > NAME.key`), or it cannot be told apart or revoked alone"
        case .cannotReadDirectory(let path, let e): return "cannot read key directory \(path): \(String(cString: strerror(e)))"
        case .badFileName(let path, let problem): return "key file \(path): its name is the key id, and \(problem): rename it"
        case .key(let e): return e.description
        }
    }
}

extension TunnelKeyring {
    /// The `NAME.key` files of `directory` (other files are ignored: a README, an editor's
    /// backup), each read like a key file (mode 0600 and the rest), named by NAME.
    public static func loadDirectory(_ directory: String) throws(TunnelKeyringError) -> [(name: KeyName, key: TunnelKey)] {
        guard let dir = opendir(directory) else { throw .cannotReadDirectory(path: directory, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(".key") && name != ".key" { names.append(name) }
        }
        var result: [(name: KeyName, key: TunnelKey)] = []
        for file in names.sorted() {
            let path = directory.hasSuffix("/") ? directory + file : directory + "/" + file
            let stem = String(file.dropLast(4))
            if stem.hasPrefix(".") { continue }  // hidden: an editor's lock or swap file
            if let problem = KeyName.problem(stem) { throw .badFileName(path: path, problem: problem) }
            do {
                result.append((KeyName(stem)!, try TunnelKey.load(path: path)))
            } catch {
                throw .key(error)
            }
        }
        return result
    }
}
