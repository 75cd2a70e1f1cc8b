import Testing
import RelayConfig

/// A config that must be refused, the line the message must name and words it must hold.
struct BadConfig: CustomTestStringConvertible, Sendable {
    var name: String
    var text: String
    var line: Int?
    var says: String
    var testDescription: String { name }
}

let forwardHead = """
    [[listener]]
    listen = "0.0.0.0:7000"
    mode = "forward"
    upstream = "192.0.2.1:80"

    """

let badConfigs: [BadConfig] = [
    BadConfig(name: "unknown key in listener", text: """
        log_level = "info"

        [[listener]]
        listen = "0.0.0.0:7000"
        mode = "forward"
        upsteam = "192.0.2.1:80"
        """, line: 6, says: "unknown key 'upsteam' in [[listener]] (did you mean 'upstream'?)"),
    BadConfig(name: "unknown top-level key", text: "worker = 2\n" + forwardHead, line: 1,
              says: "unknown key 'worker' at the top level (did you mean 'workers'?)"),
    BadConfig(name: "unknown key in interception", text: forwardHead + """
        [interception]
        lan_interface = ["lan0"]
        """, line: 6, says: "unknown key 'lan_interface' in [interception] (did you mean 'lan_interfaces'?)"),
    BadConfig(name: "unknown table", text: forwardHead + "[intercept]\nipv6 = true\n", line: 5,
              says: "unknown key 'intercept' at the top level (did you mean 'interception'?)"),
    BadConfig(name: "bad IPv4 literal", text: """
        [[listener]]
        mode = "forward"
        listen = "10.0.0.300:80"
        upstream = "192.0.2.1:80"
        """, line: 3, says: "listen = \"10.0.0.300:80\" is not an IPv4 or IPv6 literal"),
    BadConfig(name: "IPv6 without brackets", text: """
        [[listener]]
        listen = "::1:80"
        mode = "forward"
        upstream = "192.0.2.1:80"
        """, line: 2, says: "put IPv6 addresses in brackets"),
    BadConfig(name: "missing port", text: """
        [[listener]]
        listen = "0.0.0.0:7000"
        mode = "forward"
        upstream = "192.0.2.1"
        """, line: 4, says: "upstream = \"192.0.2.1\" has no port"),
    BadConfig(name: "port out of range", text: """
        [[listener]]
        listen = "0.0.0.0:70000"
        mode = "forward"
        upstream = "192.0.2.1:80"
        """, line: 2, says: "has a bad port"),
    BadConfig(name: "wildcard upstream", text: """
        [[listener]]
        listen = "0.0.0.0:7000"
        mode = "forward"
        upstream = "0.0.0.0:80"
        """, line: 4, says: "is a wildcard address"),
    BadConfig(name: "string where a number goes", text: "workers = \"4\"\n" + forwardHead, line: 1,
              says: "'workers' at the top level must be a whole number, not a string"),
    BadConfig(name: "string where seconds go", text: "connect_timeout = \"10s\"\n" + forwardHead, line: 1,
              says: "'connect_timeout' at the top level must be a number of seconds, not a string"),
    BadConfig(name: "number where a string goes", text: """
        [[listener]]
        listen = 7000
        mode = "forward"
        upstream = "192.0.2.1:80"
        """, line: 2, says: "'listen' in [[listener]] must be a string in quotes, not an integer"),
    BadConfig(name: "boolean in quotes", text: """
        [[listener]]
        listen = "0.0.0.0:7000"
        mode = "server"
        backend = "127.0.0.1:80"
        proxy_protocol = "yes"
        """, line: 5, says: "must be true or false (no quotes), not a string"),
    BadConfig(name: "negative idle timeout", text: "connect_timeout = 5\nidle_timeout = -1\n" + forwardHead, line: 2,
              says: "idle_timeout = -1 cannot be negative"),
    BadConfig(name: "negative grace as float", text: "grace = -0.5\n" + forwardHead, line: 1,
              says: "grace = -0.5 cannot be negative"),
    // Past about 9.2e9 s the nanosecond arithmetic used to trap: refused with the line.
    BadConfig(name: "timeout too large to represent", text: "idle_timeout = 1e10\n" + forwardHead, line: 1,
              says: "idle_timeout = 10000000000.0 must be at most 1000000000 seconds"),
    BadConfig(name: "header timeout zero", text: "header_timeout = 0\n" + forwardHead, line: 1,
              says: "header_timeout must be more than 0 seconds"),
    BadConfig(name: "pending headers per source zero", text: "max_pending_per_source = 0\n" + forwardHead, line: 1,
              says: "max_pending_per_source"),
    BadConfig(name: "upstream that is neither address nor name", text: """
        [[listener]]
        listen = "0.0.0.0:7000"
        mode = "forward"
        upstream = "back_end!:80"
        """, line: 4, says: "upstream = \"back_end!:80\" is not an address or host name"),
    BadConfig(name: "duplicate listener", text: """
        [[listener]]
        listen = "0.0.0.0:7000"
        mode = "forward"
        upstream = "192.0.2.1:80"

        [[listener]]
        mode = "forward"
        listen = "0.0.0.0:7000"
        upstream = "192.0.2.2:80"
        """, line: 8, says: "duplicate listener 0.0.0.0:7000 (first at line 2)"),
    BadConfig(name: "dual-stack wildcard overlaps IPv4", text: """
        [[listener]]
        listen = "[::]:7000"
        mode = "forward"
        upstream = "192.0.2.1:80"
        [[listener]]
        listen = "127.0.0.1:7000"
        mode = "forward"
        upstream = "192.0.2.2:80"
        """, line: 6, says: "listener 127.0.0.1:7000 overlaps [::]:7000 at line 2"),
    BadConfig(name: "forward without upstream", text: """
        [[listener]]
        listen = "0.0.0.0:7000"
        mode = "forward"
        """, line: 3, says: "mode = \"forward\" needs upstream = \"HOST:PORT\""),
    BadConfig(name: "upstream on a transparent listener", text: """
        [[listener]]
        listen = "[::]:7000"
        mode = "transparent"
        upstream = "192.0.2.1:80"

        [interception]
        lan_interfaces = ["lan0"]
        """, line: 4, says: "'upstream' does not apply to mode = \"transparent\""),
    BadConfig(name: "listener without mode", text: """
        [[listener]]
        listen = "0.0.0.0:7000"
        upstream = "192.0.2.1:80"
        """, line: 1, says: "[[listener]] has no mode"),
    BadConfig(name: "unknown mode", text: """
        [[listener]]
        listen = "0.0.0.0:7000"
        mode = "tproxy"
        """, line: 3, says: "mode = \"tproxy\" is not one of \"forward\", \"transparent\""),
    BadConfig(name: "single-bracket listener", text: """
        [listener]
        listen = "0.0.0.0:7000"
        mode = "forward"
        upstream = "192.0.2.1:80"
        """, line: 1, says: "listeners are written [[listener]] (double brackets)"),
    BadConfig(name: "no listener", text: "log_level = \"debug\"\n", line: nil, says: "no listeners"),
    BadConfig(name: "TOML syntax error", text: """
        log_level = "info"
        [[listener]]
        listen = "0.0.0.0:7000
        mode = "forward"
        """, line: 3, says: "not valid TOML"),
    BadConfig(name: "transparent without interception", text: """
        [[listener]]
        listen = "[::]:7000"
        mode = "transparent"
        """, line: 3, says: "a transparent listener needs [interception] with lan_interfaces"),
    BadConfig(name: "two listeners for the same intercepted family", text: """
        [[listener]]
        listen = "[::]:7000"
        mode = "transparent"
        [[listener]]
        listen = "0.0.0.0:7001"
        mode = "redirect"
        [interception]
        lan_interfaces = ["lan0"]
        """, line: 5, says: "same intercepted IPv4 traffic as [::]:7000 at line 2"),
    BadConfig(name: "exclude prefix with host bits, in a multi-line array", text: forwardHead + """
        [interception]
        lan_interfaces = ["lan0"]
        exclude = [
          "10.0.0.0/8",
          "192.168.1.1/24",
        ]
        """, line: 9, says: "'192.168.1.1/24' has host bits set: did you mean 192.168.1.0/24?"),
    BadConfig(name: "bad interface name", text: forwardHead + """
        [interception]
        lan_interfaces = ["lan 0"]
        """, line: 6, says: "'lan 0' in lan_interfaces is not an interface name"),
    BadConfig(name: "system routing table", text: forwardHead + """
        [interception]
        lan_interfaces = ["lan0"]
        table = 254
        """, line: 7, says: "table = 254 is a system routing table"),
    BadConfig(name: "pipe size out of range", text: "pipe_size = 100\n" + forwardHead, line: 1,
              says: "pipe_size = 100 is out of range: use 4096 to 67108864 bytes"),
    BadConfig(name: "unknown splice engine", text: "splice = \"fast\"\n" + forwardHead, line: 1,
              says: "splice = \"fast\" is not one of"),
    BadConfig(name: "unknown log level", text: "log_level = \"verbose\"\n" + forwardHead, line: 1,
              says: "log_level = \"verbose\" is not one of \"trace\""),
    BadConfig(name: "via without key file", text: """
        [[listener]]
        listen = "[::]:7000"
        mode = "transparent"
        via = "198.51.100.1:4443"
        [interception]
        lan_interfaces = ["lan0"]
        """, line: 4, says: "'via' needs key_file"),
    BadConfig(name: "tunnel server without key file", text: """
        [[listener]]
        listen = "[::]:4443"
        mode = "tunnel-server"
        """, line: 3, says: "mode = \"tunnel-server\" needs key_dir = \"DIR\" (a NAME.key per gateway) or key_file"),
    BadConfig(name: "forward loops to itself", text: """
        [[listener]]
        listen = "127.0.0.1:7000"
        mode = "forward"
        upstream = "127.0.0.1:7000"
        """, line: 4, says: "is this listener's own address"),
    // Issue 24, finding 9: main accepted up to Int32.max, and every worker wrote a table that size.
    BadConfig(name: "max_connections beyond what descriptors allow", text: "max_connections = 2147483647\n" + forwardHead, line: 1,
              says: "max_connections = 2147483647 is out of range: use 1 to 1048576 (each connection holds two descriptors"),
]

@Suite struct BadConfigTests {
    @Test(arguments: badConfigs)
    func refusedWithOneLineNamingTheLine(_ bad: BadConfig) throws {
        let error = try #require(parseError(bad.text), "\(bad.name) was accepted")
        let text = error.description
        #expect(!text.contains("\n"), "not one line: \(text)")
        #expect(error.line == bad.line, "\(text)")
        let location = bad.line.map { "\(origin):\($0): " } ?? "\(origin): "
        #expect(text.hasPrefix(location), "\(text)")
        #expect(text.contains(bad.says), "\(text)")
    }

    @Test func messageIsExactlyFileLineWhatToDo() {
        let error = parseError(badConfigs[0].text)
        #expect(error?.description == "gw.toml:6: unknown key 'upsteam' in [[listener]] (did you mean 'upstream'?)")
    }

    @Test func loadNamesAMissingFile() {
        #expect(throws: ConfigError(file: "/nonexistent/gw.toml", line: nil,
                                    message: "cannot open the config file: No such file or directory")) {
            try RelayConfigFile.load(path: "/nonexistent/gw.toml")
        }
    }

    @Test func keyInTheRightListenerOfSeveral() {
        // The same key in two listeners: the error must name the second one's line.
        let text = """
            [[listener]]
            listen = "0.0.0.0:7000"
            mode = "forward"
            upstream = "192.0.2.1:80"

            [[listener]]
            listen = "0.0.0.0:7001"
            mode = "forward"
            upstream = "192.0.2.1"
            """
        #expect(parseError(text)?.line == 9)
    }
}
