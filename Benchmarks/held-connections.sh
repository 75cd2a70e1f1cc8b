#!/usr/bin/env bash
# Many idle connections held through a proxy: the proxy's memory (RSS), descriptors and
# pipes while N connections are open and idle, mptcp-relay against HAProxy in one run.
#
# Each connection sends 16 bytes, gets them echoed back (checked), then stays open and idle.
# This machine caps a process at 20,000 descriptors and HAProxy asks for about 2.5 per
# connection (splice pipes included), so N defaults to 7,000 for both; the relay alone holds
# about 9,000 per process (two descriptors per connection) — tests/ConcurrencyTests spreads
# 10,000 over two relay processes.
#
# Runs in a network namespace of its own (lo only). Root needed.
# Usage: Benchmarks/held-connections.sh [--connections N] [--relay PATH]
set -euo pipefail
cd "$(dirname "$0")/.."

N=7000
RELAY=.build-release/release/mptcp-relay
while (($#)); do
    case $1 in
        --connections) N=$2; shift 2 ;;
        --relay) RELAY=$2; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "bench: run as root (network namespace)" >&2; exit 1; }
if [[ ! -x $RELAY ]]; then
    swift build -c release --scratch-path .build-release --product mptcp-relay >&2
fi

NS=heldbench-$$
# shellcheck source=Benchmarks/loopback-netns.sh
source Benchmarks/loopback-netns.sh   # after the cd above: the repository root
inns sysctl -qw net.core.somaxconn=16384 net.ipv4.ip_local_port_range="1024 65000"

cat >"$WORK/echo.py" <<'PY'
import asyncio, sys
async def handle(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except ConnectionError:
        pass
    w.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=16384)
    async with server:
        await server.serve_forever()
asyncio.run(main())
PY
cat >"$WORK/hold.py" <<'PY'
import asyncio, os, sys
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
async def one(i, held):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    msg = i.to_bytes(8, "big") * 2
    w.write(msg)
    await w.drain()
    if await r.readexactly(16) != msg:
        raise SystemExit(f"connection {i}: echo differs")
    held.append(w)
async def main():
    held = []
    sem = asyncio.Semaphore(200)
    async def limited(i):
        async with sem:
            await one(i, held)
    await asyncio.gather(*(limited(i) for i in range(n)))
    open(ready, "w").write(f"{len(held)}\n")
    await asyncio.sleep(3600)
asyncio.run(main())
PY
inns mptcpize run python3 "$WORK/echo.py" 7000 >"$WORK/echo.log" 2>&1 &
wait_listen 7000
inns "$RELAY" run --listen 127.0.0.1:7001 --upstream 127.0.0.1:7000 --log-level notice --max-connections $((N + 100)) >"$WORK/relay.log" 2>&1 &
cat >"$WORK/haproxy.cfg" <<CFG
global
    maxconn $((N + 100))
defaults
    mode tcp
    option splice-auto
    timeout connect 5s
    timeout client 600s
    timeout server 600s
frontend fe
    bind 127.0.0.1:7002
    default_backend be
backend be
    server s1 127.0.0.1:7000
CFG
inns mptcpize run haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
wait_listen 7001
wait_listen 7002 || { cat "$WORK/haproxy.log" >&2; exit 1; }

measure() {  # pid -> "rss_kib fds pipes"
    local pid=$1 rss fds pipes
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    fds=$(ls "/proc/$pid/fd" | wc -l)
    pipes=$(find "/proc/$pid/fd" -lname 'pipe:*' 2>/dev/null | wc -l)
    echo "$rss $fds $pipes"
}
# The process that owns the listening socket (ip netns exec and mptcpize may fork).
listener_pid() { inns ss -ltnpH "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }
declare -A PID=([relay]=$(listener_pid 7001) [haproxy]=$(listener_pid 7002) [port-relay]=7001 [port-haproxy]=7002)
printf '%-8s %10s %10s %8s %8s %10s\n' arm idle_rss held_rss fds pipes kib_per_conn
for arm in relay haproxy; do
    pid=${PID[$arm]}
    read -r rss0 _ _ < <(measure "$pid")
    rm -f "$WORK/ready"
    inns python3 "$WORK/hold.py" "${PID[port-$arm]}" "$N" "$WORK/ready" >"$WORK/hold-$arm.log" 2>&1 &
    HOLD=$!
    for _ in $(seq 600); do [[ -s $WORK/ready ]] && break; kill -0 $HOLD 2>/dev/null || break; sleep 0.1; done
    [[ -s $WORK/ready ]] || { echo "bench: holder via $arm failed: $(tail -3 "$WORK/hold-$arm.log")" >&2; exit 1; }
    sleep 2   # idle: pipes go back to the pool and are trimmed
    read -r rss fds pipes < <(measure "$pid")
    printf '%-8s %10s %10s %8s %8s %10.2f\n' "$arm" "$rss0" "$rss" "$fds" "$pipes" "$(awk -v a="$rss" -v b="$rss0" -v n="$N" 'BEGIN { print (a - b) / n }')"
    kill $HOLD; wait $HOLD 2>/dev/null || true
    sleep 2
done
echo "($N connections held idle through each proxy; RSS in KiB)"
