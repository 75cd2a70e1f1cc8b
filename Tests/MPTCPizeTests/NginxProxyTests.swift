import Foundation
import Testing

/// nginx registers an upstream socket with epoll before connect(); scoped mode swaps the socket
/// at connect() and must make that registration again, or every proxied request ends in 504
/// after proxy_connect_timeout (issue 9). nginx runs in the client namespace under
/// `mptcpize run --scope connect`, the upstream (python http.server, MPTCP) in the server one.
@Suite(.serialized) struct NginxProxyTests {
    static let nginx = "/usr/sbin/nginx"
    static let upstreamPort = 8000, proxyPort = 8080

    static func config(dir: String) -> String {
        """
        daemon off;
        master_process off;  # one process: a SIGKILL from the test leaves no worker behind
        worker_processes 1;
        user root;
        error_log stderr info;
        pid \(dir)/nginx.pid;
        events { worker_connections 64; }
        http {
            access_log off;
            client_body_temp_path \(dir)/body;
            proxy_temp_path \(dir)/proxy;
            fastcgi_temp_path \(dir)/fastcgi;
            uwsgi_temp_path \(dir)/uwsgi;
            scgi_temp_path \(dir)/scgi;
            server {
                listen 127.0.0.1:\(proxyPort);
                location / {
                    proxy_pass http://\(NetnsPair.serverAddress):\(upstreamPort);
                    proxy_connect_timeout 5s;
                }
            }
        }
        """
    }

    @Test(arguments: [true, false])
    func reverseProxyAnswers200WithMPTCPUpstream(_ mptcpEnabled: Bool) throws {
        try Build.require()
        guard FileManager.default.isExecutableFile(atPath: Self.nginx) else {
            throw TestError("\(Self.nginx) is missing: run scripts/setup-deps.sh (installs nginx-light)")
        }
        let dir = try ScratchDir()
        defer { dir.remove() }
        let www = dir.file("www")
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try runChecked(["sh", "-c", "head -c 2097152 /dev/urandom > '\(www)/blob'"])
        let conf = try dir.write("nginx.conf", Self.config(dir: dir.path))

        try NetnsPair.with(mptcpEnabled: mptcpEnabled) { pair in
            let upstream = try Child(NetnsPair.exec(pair.server, [
                Build.cli, "run", "/usr/bin/python3", "-m", "http.server", "\(Self.upstreamPort)",
                "--bind", NetnsPair.serverAddress, "--directory", www,
            ]))
            defer { _ = upstream.stop() }
            let proxy = try Child(NetnsPair.exec(pair.client, [Build.cli, "run", "-d", "--scope", "connect", Self.nginx, "-c", conf]))
            defer { _ = proxy.stop() }
            try NetnsPair.waitForListener(pair.server, port: Self.upstreamPort)
            try NetnsPair.waitForListener(pair.client, port: Self.proxyPort)

            let output = dir.file("received")
            let fetched = try run(NetnsPair.exec(pair.client, [
                "curl", "-sS", "-o", output, "-w", "%{http_code}", "--max-time", "30",
                "http://127.0.0.1:\(Self.proxyPort)/blob",
            ]))
            let counters = try NetnsPair.mptcpCounters(pair.server)
            let log = proxy.stop().stderr
            #expect(fetched.stdout == "200", "\(fetched.summary)\nnginx: \(log.suffix(2000))")
            #expect(try sha256(ofFile: output) == sha256(ofFile: "\(www)/blob"), "body differs")
            if mptcpEnabled {
                #expect(counters["MPCapableACKRX", default: 0] >= 1, "the upstream leg was not MPTCP: \(counters)")
                #expect(log.contains("connect port \(Self.upstreamPort): AF_INET stream socket is MPTCP"), "\(log.suffix(2000))")
                #expect(log.contains("made again on the new socket"), "\(log.suffix(2000))")
            } else {
                #expect(counters["MPCapableSYNRX", default: 0] == 0, "\(counters)")
                #expect(log.contains("fell back to TCP"), "\(log.suffix(2000))")
            }
        }
    }
}
