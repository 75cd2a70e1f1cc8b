#!/usr/bin/env bash
# What a snapshot costs with many open connections: N idle connections through mptcp-relay
# (MPTCP upstream on loopback, so each has a subflow to read), then /api/connections and
# /metrics requested R times each, one at a time. Prints the latency of each path (the
# workers' share of it is bounded by the per-request subflow budget of 256 connections per
# worker), the JSON size and how many connections' subflows were read.
# A benchmark, not a test: it prints figures, it asserts nothing.
#
# Usage: Benchmarks/admin-snapshot.sh [--connections N] [--requests R] [--relay PATH]
# Root needed (a network namespace of its own, lo only). Default N=4000 (the descriptor
# limit here, 20,000, caps one relay at about 9,000 connections: see NOTES).
set -euo pipefail
cd "$(dirname "$0")/.."

N=4000
R=20
RELAY=.build/release/mptcp-relay
while (($#)); do
    case $1 in
        --connections) N=$2; shift 2 ;;
        --requests) R=$2; shift 2 ;;
        --relay) RELAY=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "bench: run as root (network namespace)" >&2; exit 1; }
if [[ ! -x $RELAY ]]; then
    echo "bench: building the relay (release)..." >&2
    swift build -c release --product mptcp-relay >&2
fi
ulimit -n "$(ulimit -Hn)"

NS=bench-snap-$$
LOG=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$LOG"
}
trap cleanup EXIT INT TERM
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" sysctl -qw net.mptcp.enabled=1

wait_listen() {
    for _ in $(seq 100); do
        [[ -n $(ip netns exec "$NS" ss -ltnH "sport = :$1") ]] && return 0
        sleep 0.1
    done
    echo "bench: nothing listens on port $1" >&2; return 1
}

cat >"$LOG/hold.py" <<'PY'
# server: accept and hold; client: open N connections to PORT and hold them.
import asyncio, sys
async def main():
    role, port = sys.argv[1], int(sys.argv[2])
    if role == "server":
        held = []
        async def on(r, w): held.append(w)
        srv = await asyncio.start_server(on, "127.0.0.1", port, backlog=4096)
        await srv.serve_forever()
    n = int(sys.argv[3]); conns = []
    for i in range(0, n, 200):
        conns += await asyncio.gather(*[asyncio.open_connection("127.0.0.1", port) for _ in range(min(200, n - i))])
    print("open", len(conns), flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
PY

ip netns exec "$NS" mptcpize run python3 "$LOG/hold.py" server 9000 >"$LOG/server.log" 2>&1 & PIDS+=($!)
wait_listen 9000
ip netns exec "$NS" "$RELAY" run --listen 127.0.0.1:9001 --upstream 127.0.0.1:9000 --max-connections $((N + 100)) \
    --admin 127.0.0.1:9180 --log-level warning >"$LOG/relay.log" 2>&1 & PIDS+=($!)
wait_listen 9001
wait_listen 9180
ip netns exec "$NS" python3 "$LOG/hold.py" client 9001 "$N" >"$LOG/client.log" 2>&1 & PIDS+=($!)
for _ in $(seq 600); do grep -q "^open" "$LOG/client.log" && break; sleep 0.1; done
grep -q "^open" "$LOG/client.log" || { echo "bench: the client did not open $N connections:"; tail "$LOG/client.log" "$LOG/relay.log"; exit 1; }
sleep 1

ip netns exec "$NS" python3 - "$R" <<'PY'
import json, statistics, sys, time, urllib.request
r = int(sys.argv[1])
for path in ("/api/connections", "/metrics"):
    times, body = [], b""
    for _ in range(r):
        t0 = time.monotonic()
        body = urllib.request.urlopen("http://127.0.0.1:9180" + path, timeout=30).read()
        times.append((time.monotonic() - t0) * 1000)
    times.sort()
    print("%-17s median %7.1f ms  max %7.1f ms  body %8d bytes" % (path, statistics.median(times), times[-1], len(body)))
    if path == "/api/connections":
        doc = json.loads(body)
        detailed = sum(1 for c in doc["connections"] if c.get("subflows") is not None)
        print("  open connections %d (listed %d), subflows read for %d, omitted (over the budget) %d, workers answered %d/%d"
              % (doc["totals"]["open_connections"], len(doc["connections"]), detailed, doc["subflow_details_omitted"],
                 doc["workers_answered"], doc["workers"]))
    else:
        # The workers' own time per answer: what the data path gave up.
        values = {}
        for line in body.decode().splitlines():
            if line.startswith("mptcp_relay_snapshot_worker_cpu_seconds_"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        n = values.get("mptcp_relay_snapshot_worker_cpu_seconds_count", 0)
        if n:
            print("  a worker's CPU time per snapshot answer: mean %.2f ms over %d answers" % (values["mptcp_relay_snapshot_worker_cpu_seconds_sum"] / n * 1000, n))
PY
