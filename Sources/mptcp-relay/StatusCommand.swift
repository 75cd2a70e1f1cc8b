#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import MPTCPSocket
import RelayAdmin
import RelayConfig

/// `mptcp-relay status`: the open connections and WANs of a running relay, read from its
/// admin listener (/api/connections), printed like `ss`.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the open connections of a running relay (from its admin listener).",
        discussion: """
            mptcp-relay status                          (admin listener at 127.0.0.1:9180)
            mptcp-relay status --config /etc/mptcp-relay/config.toml   (its [admin] table)
            mptcp-relay status --admin 192.0.2.1:9090 --token-file admin.token --watch 2
            """)

    @OptionGroup var file: ConfigFileOption

    @Option(help: ArgumentHelp("The relay's admin listener (default: [admin] of --config, else 127.0.0.1:9180).", valueName: "host:port"))
    var admin: SocketAddress?

    @Option(help: ArgumentHelp("File holding the admin token (default: token_file of --config).", valueName: "file"))
    var tokenFile: String?

    @Flag(help: "Print the API's JSON as it is.")
    var json = false

    @Option(help: ArgumentHelp("Print again every N seconds until interrupted.", valueName: "seconds"))
    var watch: Double?

    func validate() throws {
        if let watch, !(watch >= 0.2 && watch <= 3600) { throw ValidationError("--watch takes 0.2 to 3600 seconds") }
    }

    func run() throws {
        let configured = try file.config.map(loadConfigOrExit)?.admin
        guard let address = admin ?? configured?.listen ?? SocketAddress(host: "127.0.0.1", port: 9180) else { return }
        var token: String?
        if let path = tokenFile ?? configured?.tokenFile {
            do { token = try AdminToken.load(path: path).text } catch {
                printError("\(error)")
                throw ExitCode(1)
            }
        }
        while true {
            try printOnce(address: address, token: token)
            guard let watch else { return }
            usleep(UInt32(watch * 1_000_000))
            if !json { print("") }
        }
    }

    private func printOnce(address: SocketAddress, token: String?) throws {
        let response: AdminClient.Response
        do { response = try AdminClient.get(address, path: "/api/connections", token: token) } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
        if response.status == 401 {
            printError("the admin listener at \(address) wants a token: give --token-file FILE (the relay's token_file)")
            throw ExitCode(1)
        }
        guard response.status == 200 else {
            printError("the admin listener at \(address) answered HTTP \(response.status)")
            throw ExitCode(1)
        }
        if json {
            print(String(decoding: response.body, as: UTF8.self))
            return
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let doc: StatusDocument
        do { doc = try decoder.decode(StatusDocument.self, from: response.body) } catch {
            printError("the answer of \(address) is not the status JSON this version reads: \(error)")
            throw ExitCode(1)
        }
        print(StatusTable.render(doc))
    }
}

/// The text layout of `status`, apart so a test can check it without a relay.
enum StatusTable {
    static func render(_ doc: StatusDocument) -> String {
        let t = doc.totals
        var out = "connections: \(t.openConnections) open, \(t.accepted) accepted, \(t.closed) closed; MPTCP \(t.mptcp), fallback \(t.fallback); pipes in use \(t.pipesInUse)"
        if doc.workersAnswered < doc.workers { out += "\n(only \(doc.workersAnswered) of \(doc.workers) workers answered in time)" }
        if !doc.wans.isEmpty {
            out += "\n\n" + table([["WAN", "Subflows", "Sent", "Received"]] + doc.wans.map {
                [$0.interface, "\($0.subflows)", bytes($0.bytesSent), bytes($0.bytesReceived)]
            })
        }
        if let uplinks = doc.uplinks, !uplinks.isEmpty {
            out += "\n\n" + table([["Uplink", "Link", "Probes", "Service", "Last round"]] + uplinks.map {
                [$0.interface, $0.link, $0.probes, $0.failOpen ? "fail open" : $0.inService ? "in service" : "OUT", $0.detail]
            })
        }
        for r in doc.routing ?? [] {
            out += "\nRouted \(r.family) traffic: \(r.via.map { "by \($0)" } ?? "main routing table") (\(r.reason))"
        }
        if let servers = doc.servers, !servers.isEmpty {
            out += "\n\n" + table([["Tunnel server", "Service", "Ping RTT", "Connections", "Last ping"]] + servers.map {
                [$0.address, $0.inService ? "in service" : "OUT", $0.rttMs.map { String(format: "%.1fms", $0) } ?? "-", "\($0.connections)", $0.detail]
            })
        }
        if let keys = doc.keys, !keys.isEmpty {
            out += "\n\n" + table([["Key", "Open", "Accepted", "Refused", "Up", "Down"]] + keys.map {
                [$0.key, "\($0.open)", "\($0.accepted)", "\($0.refused)", bytes($0.bytesUp), bytes($0.bytesDown)]
            })
        }
        let tunnel = doc.connections.contains { $0.key != nil || $0.server != nil }
        var rows = [["ID", "State", "MPTCP", "Subflows", "Client", "Destination"] + (tunnel ? ["Key/Server"] : []) + ["Up", "Down", "Age"]]
        for c in doc.connections {
            let subflows = c.subflows.map { list in
                "\(list.count)" + (list.isEmpty ? "" : " (" + list.map { $0.interface ?? "?" }.joined(separator: ",") + ")")
            } ?? "-"
            rows.append([c.id, c.phase, c.mptcp ?? "-", subflows, c.client ?? "?", c.destination ?? "?"]
                        + (tunnel ? [c.key ?? c.server ?? "-"] : [])
                        + [bytes(c.bytesUp), bytes(c.bytesDown), String(format: "%.0fs", c.ageSeconds)])
        }
        out += "\n\n" + table(rows)
        if let u = doc.udp, u.flowsOpened > 0 || !u.flows.isEmpty {
            let drops = u.drops.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            out += "\n\nUDP flows: \(u.openFlows) open, \(u.flowsOpened) since start; datagrams up \(u.datagramsUp), down \(u.datagramsDown); dropped: \(drops.isEmpty ? "none" : drops)"
            if !u.flows.isEmpty {
                out += "\n" + table([["ID", "State", "MPTCP", "Client", "Destination", "Datagrams up/down", "Up", "Down", "Dropped", "Idle"]] + u.flows.map {
                    [$0.id, $0.phase, $0.mptcp ?? "-", $0.client ?? "?", $0.destination ?? "?", "\($0.datagramsUp)/\($0.datagramsDown)",
                     bytes($0.bytesUp), bytes($0.bytesDown), "\($0.drops)", String(format: "%.0fs", $0.idleSeconds)]
                })
            }
        }
        if doc.subflowDetailsOmitted > 0 { out += "\n(subflows of \(doc.subflowDetailsOmitted) connection(s) not read: over the per-request budget)" }
        return out
    }

    static func bytes(_ n: UInt64) -> String {
        var value = Double(n)
        for unit in ["B", "KiB", "MiB", "GiB"] {
            if value < 1024 { return unit == "B" ? "\(n)B" : String(format: "%.1f%@", value, unit) }
            value /= 1024
        }
        return String(format: "%.1fTiB", value)
    }

    static func table(_ rows: [[String]]) -> String {
        let widths = (0..<(rows.first?.count ?? 0)).map { i in rows.map { $0[i].count }.max() ?? 0 }
        return rows.map { row in
            zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }
}
