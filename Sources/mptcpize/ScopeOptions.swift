import ArgumentParser

/// Which sockets the shim converts; turned into the MPTCPIZE_* variables the library reads.
struct ScopeOptions: ParsableArguments {
    enum Scope: String, ExpressibleByArgument, CaseIterable {
        case all, connect, listen
    }

    @Option(help: "Convert sockets that connect, listen, or all of them (default: all, like the classic mptcpize).")
    var scope: Scope?

    @Option(help: ArgumentHelp("Convert only these ports (peer port on connect, local port on listen).", valueName: "list"))
    var ports: String?

    @Option(help: ArgumentHelp("Never convert these ports, e.g. 5432,6379,8000-8100.", valueName: "list"))
    var excludePorts: String?

    mutating func validate() throws {
        for (flag, value) in [("--ports", ports), ("--exclude-ports", excludePorts)] {
            if let value, !PortList.isValid(value) {
                throw ValidationError("\(flag) '\(value)' is not a list of ports like 80,443,8000-8100 (ports 1-65535)")
            }
        }
    }

    /// Variables to set, in a stable order; unset options leave the environment's own values.
    var environment: [(String, String)] {
        var vars: [(String, String)] = []
        if let scope { vars.append(("MPTCPIZE_SCOPE", scope.rawValue)) }
        if let ports { vars.append(("MPTCPIZE_PORTS", ports)) }
        if let excludePorts { vars.append(("MPTCPIZE_EXCLUDE_PORTS", excludePorts)) }
        return vars
    }
}

/// Same grammar as the library's parser, checked here to fail early with a clear message.
enum PortList {
    static func isValid(_ text: String) -> Bool {
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
        return !items.isEmpty && items.allSatisfy { item in
            let bounds = item.trimmingSpaces.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count) else { return false }
            let numbers = bounds.compactMap { $0.allSatisfy(\.isASCIIDigit) ? Int($0) : nil }
            guard numbers.count == bounds.count, numbers.allSatisfy({ (1...65535).contains($0) }) else { return false }
            return numbers.first! <= numbers.last!
        }
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return s
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
