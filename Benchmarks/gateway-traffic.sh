#!/usr/bin/env bash
# The traffic a gateway really carries: many short connections and small messages.
#
# Arms (upstream MPTCP for all; servers under the classic mptcpize):
#   direct        the client straight to the server (wrk/sockperf under mptcpize)
#   relay         plain TCP -> mptcp-relay (default logging: one info line per connection) -> MPTCP
#   relay-quiet   the same with --log-level notice
#   haproxy       plain TCP -> HAProxy (mode tcp, option splice-auto, under mptcpize) -> MPTCP
# Measures, in alternating rounds (A B C D A B C D ...) so that drift hits every arm alike:
#   rate     wrk -t1 -c32, "Connection: close", a 1 KiB file from nginx: requests/s
#   latency  sockperf ping-pong, 64-byte messages over one TCP connection: p50 and p99 (µs)
# Prints every round, medians, and ratios against HAProxy: connection rate, and added p50
# latency (arm minus direct) relative to HAProxy's.
#
# Runs in a network namespace of its own (lo only). Root needed.
# Usage: Benchmarks/gateway-traffic.sh [--rounds N] [--seconds S] [--relay PATH]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=5
SECS=5
RELAY=.build-release/release/mptcp-relay
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --seconds) SECS=$2; shift 2 ;;
        --relay) RELAY=$2; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "bench: run as root (network namespace)" >&2; exit 1; }
for t in wrk sockperf haproxy nginx mptcpize python3; do
    command -v "$t" >/dev/null || [[ -x /usr/sbin/$t ]] || { echo "bench: '$t' missing: run scripts/setup-deps.sh" >&2; exit 1; }
done
if [[ ! -x $RELAY ]]; then
    echo "bench: building the relay (release, scratch .build-release)..." >&2
    swift build -c release --scratch-path .build-release --product mptcp-relay >&2
fi

NS=gwbench-$$
# shellcheck source=Benchmarks/loopback-netns.sh
source Benchmarks/loopback-netns.sh   # after the cd above: the repository root

# Servers: nginx with a 1 KiB file, sockperf.
mkdir -p "$WORK/www"
head -c 1024 /dev/urandom >"$WORK/www/1k"
cat >"$WORK/nginx.conf" <<CFG
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 0;
    server { listen 127.0.0.1:8080 backlog=4096; root $WORK/www; }
}
CFG
inns mptcpize run nginx -c "$WORK/nginx.conf" >"$WORK/nginx.log" 2>&1 &
inns mptcpize run sockperf server --tcp -i 127.0.0.1 -p 11111 >"$WORK/sockperf-server.log" 2>&1 &
wait_listen 8080
wait_listen 11111
inns sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"

ARMS=(direct relay relay-quiet haproxy)
declare -A HTTP_PORT=([direct]=8080 [relay]=6001 [relay-quiet]=6101 [haproxy]=6201)
declare -A PING_PORT=([direct]=11111 [relay]=6002 [relay-quiet]=6102 [haproxy]=6202)
for arm in relay relay-quiet; do
    level=info; [[ $arm == relay-quiet ]] && level=notice
    for target in HTTP PING; do
        if [[ $target == HTTP ]]; then port=${HTTP_PORT[$arm]}; up=8080; else port=${PING_PORT[$arm]}; up=11111; fi
        # Logs go to a file, as under systemd to the journal: the relay writes them from its own thread.
        inns "$RELAY" run --listen "127.0.0.1:$port" --upstream "127.0.0.1:$up" --log-level "$level" >>"$WORK/$arm.log" 2>&1 &
        wait_listen "$port"
    done
done
cat >"$WORK/haproxy.cfg" <<CFG
global
    maxconn 4000
defaults
    mode tcp
    option splice-auto
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend http
    bind 127.0.0.1:${HTTP_PORT[haproxy]}
    default_backend nginx
backend nginx
    server s1 127.0.0.1:8080
frontend ping
    bind 127.0.0.1:${PING_PORT[haproxy]}
    default_backend sockperf
backend sockperf
    server s1 127.0.0.1:11111
CFG
inns mptcpize run haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
HAPROXY_LOG=$WORK/haproxy.log
wait_listen "${HTTP_PORT[haproxy]}" || { cat "$HAPROXY_LOG" >&2; exit 1; }

RESULTS=$WORK/results.tsv   # arm round rps p50_us p99_us
run_arm() {
    local arm=$1 round=$2 client=() rps p50 p99
    [[ $arm == direct ]] && client=(mptcpize run)
    rps=$(inns "${client[@]}" wrk -t1 -c32 -d"${SECS}s" -H "Connection: close" "http://127.0.0.1:${HTTP_PORT[$arm]}/1k" |
        awk '/Requests\/sec/ {print $2}')
    inns "${client[@]}" sockperf ping-pong --tcp -i 127.0.0.1 -p "${PING_PORT[$arm]}" -m 64 -t "$SECS" >"$WORK/ping-$arm-$round.txt" 2>&1 || true
    p50=$(awk '/percentile 50.000/ {print $NF}' "$WORK/ping-$arm-$round.txt")
    p99=$(awk '/percentile 99.000/ {print $NF}' "$WORK/ping-$arm-$round.txt")
    printf '%s\t%s\t%s\t%s\t%s\n' "$arm" "$round" "${rps:-0}" "${p50:-nan}" "${p99:-nan}" >>"$RESULTS"
    printf 'round %s  %-12s %9.0f req/s   p50 %7s µs   p99 %7s µs\n' "$round" "$arm" "${rps:-0}" "${p50:-?}" "${p99:-?}"
}

echo "bench: ${ROUNDS} rounds x ${#ARMS[@]} arms x ${SECS}s per measure, loopback; $(nproc) CPUs, kernel $(uname -r)"
for ((r = 1; r <= ROUNDS; r++)); do
    for arm in "${ARMS[@]}"; do run_arm "$arm" "$r"; done
done

python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
arms = []
for r in rows:
    if r[0] not in arms: arms.append(r[0])
def med(arm, col):
    vals = [float(r[col]) for r in rows if r[0] == arm and r[col] not in ("", "nan")]
    return statistics.median(vals) if vals else float("nan")
print("\nmedians:")
for a in arms:
    print(f"  {a:12s} {med(a, 2):9.0f} req/s   p50 {med(a, 3):7.1f} µs   p99 {med(a, 4):7.1f} µs")
print("ratios against haproxy (same run):")
direct50 = med("direct", 3)
for a in ("relay", "relay-quiet"):
    rate = med(a, 2) / med("haproxy", 2)
    added = (med(a, 3) - direct50) / (med("haproxy", 3) - direct50)
    print(f"  {a:12s} connection rate {rate:.2f} x   added p50 latency {added:.2f} x")
PY
for arm in relay relay-quiet; do
    echo "$arm: $(grep -c 'closed conn=' "$WORK/$arm.log" || true) connection lines logged, $(grep -c 'dropped while' "$WORK/$arm.log" || true) drop notices"
done
