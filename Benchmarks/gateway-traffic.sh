#!/usr/bin/env bash
# The traffic a gateway really carries, many short connections and small messages, and what
# each proxy spends on it.
#
# Arms (upstream MPTCP for all; servers under the classic mptcpize):
#   direct        the client straight to the server (wrk/sockperf/iperf3 under mptcpize)
#   relay         plain TCP -> mptcp-relay (default logging: one info line per connection) -> MPTCP
#   relay-quiet   the same with --log-level notice
#   haproxy       plain TCP -> HAProxy (mode tcp, option splice-auto, under mptcpize) -> MPTCP
#   relay-1cpu, haproxy-1cpu   per-core capacity: the relay with --workers 1 and HAProxy with
#                 nbthread 1, each pinned to CPU 0; wrk and an nginx of their own on CPU 1
#   NAME          with --also NAME=PATH: another relay build, as the relay arm (rate, latency)
# Measures, in alternating rounds (A B C D A B C D ...) so that drift hits every arm alike:
#   rate     wrk -t1 -c32, "Connection: close", a 1 KiB file from nginx: requests/s, and the
#            proxy's CPU per request (utime+stime of its process over the run, /proc/PID/stat),
#            also split into user space and kernel: the kernel's share is mostly the network
#            work itself (on loopback, including the peers' receive path), plus the proxy's
#            own system calls and ring operations
#   latency  sockperf ping-pong, 64-byte messages over one TCP connection: p50 and p99 (µs)
#   core     the rate measure through the pinned arms, and how busy the proxy kept CPU 0
#   bulk     iperf3, one stream for S seconds: Gbit/s, the proxy's CPU seconds per GB, and the
#            whole machine's (on loopback the sender's splice or send also runs the receiver's
#            TCP stack, so a faster proxy is billed for more of it: the machine's busy time
#            added over the direct arm is the fairer cost)
# Prints every round, medians, and ratios against HAProxy in the same run: connection rate,
# CPU per connection, added p50 latency (arm minus direct, over HAProxy's), per-core rate,
# bulk throughput and CPU per GB.
#
# --also NAME=PATH (repeatable) compares builds in one run, under the same noise: what each
# step of a change buys.
# --congestion NAME: the namespace's TCP congestion control (default: the host's). Bulk cost
# through an MPTCP socket depends on it: with bbr's pacing every push may arm a timer, which
# in a virtual machine is a costly exit (see docs/deployment.md). The name is added to
# net.ipv4.tcp_allowed_congestion_control for the run when it is missing there.
# --perf DIR: afterwards, one more rate run through the relay under `perf record -F 999 -g`;
# DIR gets perf.data and report.txt (perf report --no-children --sort dso,sym).
#
# Runs in a network namespace of its own (lo only). Root needed.
# Usage: Benchmarks/gateway-traffic.sh [--rounds N] [--seconds S] [--relay PATH] [--also NAME=PATH]... [--congestion NAME] [--perf DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=5
SECS=5
RELAY=.build-release/release/mptcp-relay
PERF_DIR=
CONGESTION=
declare -A ALSO=()
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --seconds) SECS=$2; shift 2 ;;
        --relay) RELAY=$2; shift 2 ;;
        --perf) PERF_DIR=$2; shift 2 ;;
        --congestion) CONGESTION=$2; shift 2 ;;
        --also) [[ $2 == ?*=?* ]] || { echo "--also wants NAME=PATH" >&2; exit 2; }
                ALSO[${2%%=*}]=${2#*=}; shift 2 ;;
        -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "bench: run as root (network namespace)" >&2; exit 1; }
for t in wrk sockperf haproxy nginx mptcpize iperf3 taskset python3; do
    command -v "$t" >/dev/null || [[ -x /usr/sbin/$t ]] || { echo "bench: '$t' missing: run scripts/setup-deps.sh" >&2; exit 1; }
done
[[ -z $PERF_DIR ]] || command -v perf >/dev/null || { echo "bench: --perf needs perf (apt-get install linux-perf)" >&2; exit 1; }
if [[ ! -x $RELAY ]]; then
    echo "bench: building the relay (release, scratch .build-release)..." >&2
    swift build -c release --scratch-path .build-release --product mptcp-relay >&2
fi
# The per-core arms need a CPU for the proxy and another for the load.
PINNED=(relay-1cpu haproxy-1cpu)
(($(nproc) >= 2)) || { echo "bench: one CPU only: per-core arms skipped" >&2; PINNED=(); }

NS=gwbench-$$
# shellcheck source=Benchmarks/loopback-netns.sh
source Benchmarks/loopback-netns.sh   # after the cd above: the repository root
TICK=$(getconf CLK_TCK)
if [[ -n $CONGESTION ]]; then
    grep -qw "$CONGESTION" /proc/sys/net/ipv4/tcp_available_congestion_control ||
        modprobe "tcp_$CONGESTION" 2>/dev/null || { echo "bench: congestion control '$CONGESTION' not available" >&2; exit 2; }
    ALLOWED=$(cat /proc/sys/net/ipv4/tcp_allowed_congestion_control)
    if ! grep -qw "$CONGESTION" <<<"$ALLOWED"; then
        sysctl -qw net.ipv4.tcp_allowed_congestion_control="$ALLOWED $CONGESTION"
        trap 'sysctl -qw net.ipv4.tcp_allowed_congestion_control="$ALLOWED"; bench_cleanup' EXIT INT TERM
    fi
    inns sysctl -qw net.ipv4.tcp_congestion_control="$CONGESTION"
fi

# Servers: nginx with a 1 KiB file (a second one on CPU 1 for the pinned arms), sockperf,
# one iperf3 server per bulk arm (a server still busy with a lingering test would refuse
# the next arm's).
mkdir -p "$WORK/www"
head -c 1024 /dev/urandom >"$WORK/www/1k"
nginx_conf() {  # PORT
    cat <<CFG
worker_processes 1;
daemon off;
pid $WORK/nginx-$1.pid;
error_log $WORK/nginx-$1-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 0;
    server { listen 127.0.0.1:$1 backlog=4096; root $WORK/www; }
}
CFG
}
nginx_conf 8080 >"$WORK/nginx-8080.conf"
nginx_conf 8081 >"$WORK/nginx-8081.conf"
inns mptcpize run nginx -c "$WORK/nginx-8080.conf" >"$WORK/nginx.log" 2>&1 &
inns taskset -c 1 mptcpize run nginx -c "$WORK/nginx-8081.conf" >"$WORK/nginx-pinned.log" 2>&1 &
inns mptcpize run sockperf server --tcp -i 127.0.0.1 -p 11111 >"$WORK/sockperf-server.log" 2>&1 &
ARMS=(direct relay relay-quiet haproxy)
BULK_ARMS=(direct relay haproxy)
declare -A HTTP_PORT=([direct]=8080 [relay]=6001 [relay-quiet]=6101 [haproxy]=6201 [relay-1cpu]=6301 [haproxy-1cpu]=6401)
declare -A PING_PORT=([direct]=11111 [relay]=6002 [relay-quiet]=6102 [haproxy]=6202)
declare -A RELAY_OF=([relay]=$RELAY [relay-quiet]=$RELAY [relay-1cpu]=$RELAY)
port=6501
for name in "${!ALSO[@]}"; do
    [[ -x ${ALSO[$name]} && -z ${HTTP_PORT[$name]:-} ]] || { echo "bench: --also $name: no such binary, or a name taken" >&2; exit 2; }
    ARMS+=("$name")
    RELAY_OF[$name]=${ALSO[$name]}
    HTTP_PORT[$name]=$port PING_PORT[$name]=$((port + 1))
    port=$((port + 100))
done
declare -A IPERF_PORT=([direct]=5201 [relay]=5202 [haproxy]=5203)
declare -A BULK_PORT=([direct]=5201 [relay]=6003 [haproxy]=6203)
for arm in "${BULK_ARMS[@]}"; do
    inns mptcpize run iperf3 -s -B 127.0.0.1 -p "${IPERF_PORT[$arm]}" >"$WORK/iperf3-$arm.log" 2>&1 &
done
for port in 8080 8081 11111 "${IPERF_PORT[@]}"; do wait_listen "$port"; done
inns sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"

# One relay process per arm and target, so each one's CPU time is its arm's alone.
# Logs go to a file, as under systemd to the journal: the relay writes them from its own thread.
start_relay() {  # ARM LISTEN_PORT UPSTREAM_PORT CPUS (all: unpinned) [RELAY ARGS...]
    local arm=$1 port=$2 up=$3 cpus=$4
    shift 4
    [[ $cpus == all ]] && cpus=0-$(($(nproc) - 1))
    inns taskset -c "$cpus" "${RELAY_OF[$arm]}" run --listen "127.0.0.1:$port" --upstream "127.0.0.1:$up" "$@" >>"$WORK/$arm.log" 2>&1 &
    wait_listen "$port"
}
for arm in relay relay-quiet "${!ALSO[@]}"; do
    level=info; [[ $arm == relay-quiet ]] && level=notice
    start_relay "$arm" "${HTTP_PORT[$arm]}" 8080 all --log-level "$level"
    start_relay "$arm" "${PING_PORT[$arm]}" 11111 all --log-level "$level"
done
start_relay relay "${BULK_PORT[relay]}" "${IPERF_PORT[relay]}" all
if ((${#PINNED[@]})); then start_relay relay-1cpu "${HTTP_PORT[relay-1cpu]}" 8081 0 --workers 1; fi
haproxy_conf() {  # NBTHREAD then FRONT_PORT BACK_PORT pairs
    printf 'global\n    maxconn 4000\n    nbthread %s\n' "$1"
    printf 'defaults\n    mode tcp\n    option splice-auto\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n'
    shift
    while (($#)); do
        printf 'listen p%s\n    bind 127.0.0.1:%s\n    server s1 127.0.0.1:%s\n' "$1" "$1" "$2"
        shift 2
    done
}
haproxy_conf "$(nproc)" "${HTTP_PORT[haproxy]}" 8080 "${PING_PORT[haproxy]}" 11111 "${BULK_PORT[haproxy]}" "${IPERF_PORT[haproxy]}" >"$WORK/haproxy.cfg"
inns mptcpize run haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
wait_listen "${HTTP_PORT[haproxy]}" || { cat "$WORK/haproxy.log" >&2; exit 1; }
if ((${#PINNED[@]})); then
    haproxy_conf 1 "${HTTP_PORT[haproxy-1cpu]}" 8081 >"$WORK/haproxy-1cpu.cfg"
    inns taskset -c 0 mptcpize run haproxy -db -f "$WORK/haproxy-1cpu.cfg" >"$WORK/haproxy-1cpu.log" 2>&1 &
    wait_listen "${HTTP_PORT[haproxy-1cpu]}" || { cat "$WORK/haproxy-1cpu.log" >&2; exit 1; }
fi
# The process behind each arm's front port: wrappers (ip netns exec, taskset, mptcpize) exec it.
declare -A PROXY_PID=()
for arm in relay relay-quiet haproxy "${PINNED[@]}" "${!ALSO[@]}"; do PROXY_PID[$arm]=$(listener_pid "${HTTP_PORT[$arm]}"); done
PROXY_PID[relay-bulk]=$(listener_pid "${BULK_PORT[relay]}")

RESULTS=$WORK/results.tsv   # arm round measure value
record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

# wrk through ARM's front port; sets RPS, CPU_US (proxy µs per request), USER_US and SYS_US
# (its user-space and kernel parts) and BUSY (% of one CPU).
RPS=0 CPU_US=nan USER_US=nan SYS_US=nan BUSY=nan
rate_run() {  # ARM [wrapper...]
    local arm=$1 pid=${PROXY_PID[$1]:-} out t0 t1 requests u0=0 s0=0 u1=0 s1=0
    shift
    [[ -n $pid ]] && { read -r u0 s0 < <(cpu_split "$pid") || true; }
    t0=$(date +%s.%N)
    out=$(inns "$@" wrk -t1 -c32 -d"${SECS}s" -H "Connection: close" "http://127.0.0.1:${HTTP_PORT[$arm]}/1k")
    sleep 0.2   # the proxy's last closes
    t1=$(date +%s.%N)
    RPS=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    CPU_US=nan USER_US=nan SYS_US=nan BUSY=nan
    if [[ -n $pid && ${requests:-0} -gt 0 ]]; then
        read -r u1 s1 < <(cpu_split "$pid") || true
        # Clock ticks over the run, as µs per request.
        per_request() { awk -v c="$1" -v t="$TICK" -v n="$requests" 'BEGIN { printf "%.1f", c / t / n * 1e6 }'; }
        CPU_US=$(per_request "$((u1 - u0 + s1 - s0))")
        USER_US=$(per_request "$((u1 - u0))")
        SYS_US=$(per_request "$((s1 - s0))")
        BUSY=$(awk -v c="$((u1 - u0 + s1 - s0))" -v t="$TICK" -v w="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" 'BEGIN { printf "%.0f", c / t / w * 100 }')
    fi
}

run_arm() {
    local arm=$1 round=$2 client=() p50 p99
    [[ $arm == direct ]] && client=(mptcpize run)
    rate_run "$arm" "${client[@]}"
    inns "${client[@]}" sockperf ping-pong --tcp -i 127.0.0.1 -p "${PING_PORT[$arm]}" -m 64 -t "$SECS" >"$WORK/ping-$arm-$round.txt" 2>&1 || true
    p50=$(awk '/percentile 50.000/ {print $NF}' "$WORK/ping-$arm-$round.txt")
    p99=$(awk '/percentile 99.000/ {print $NF}' "$WORK/ping-$arm-$round.txt")
    record "$arm" "$round" rate "${RPS:-0}"
    record "$arm" "$round" cpu_us "$CPU_US"
    record "$arm" "$round" user_us "$USER_US"
    record "$arm" "$round" sys_us "$SYS_US"
    record "$arm" "$round" p50 "${p50:-nan}"
    record "$arm" "$round" p99 "${p99:-nan}"
    printf 'round %s  %-12s %9.0f req/s   cpu %6s µs/req (user %s, kernel %s)   p50 %7s µs   p99 %7s µs\n' "$round" "$arm" "${RPS:-0}" "$CPU_US" "$USER_US" "$SYS_US" "${p50:-?}" "${p99:-?}"
}

run_pinned() {
    local arm=$1 round=$2
    rate_run "$arm" taskset -c 1
    record "$arm" "$round" core_rate "${RPS:-0}"
    record "$arm" "$round" core_busy "$BUSY"
    record "$arm" "$round" core_per_busy "$(awk -v r="${RPS:-0}" -v b="$BUSY" 'BEGIN { if (b > 0) printf "%.0f", r / b * 100; else print "nan" }')"
    record "$arm" "$round" core_cpu_us "$CPU_US"
    printf 'round %s  %-12s %9.0f req/s on one core (busy %s %%)   cpu %6s µs/req\n' "$round" "$arm" "${RPS:-0}" "$BUSY" "$CPU_US"
}

run_bulk() {
    local arm=$1 round=$2 client=() pid json c0=0 c1=0 m0 m1 gbps cpu_gb machine_gb
    [[ $arm == direct ]] && client=(mptcpize run)
    case $arm in relay) pid=${PROXY_PID[relay-bulk]} ;; haproxy) pid=${PROXY_PID[haproxy]} ;; *) pid= ;; esac
    [[ -n $pid ]] && c0=$(cpu_ticks "$pid")
    m0=$(machine_busy_ticks)
    json=$WORK/bulk-$arm-$round.json
    inns "${client[@]}" iperf3 -c 127.0.0.1 -p "${BULK_PORT[$arm]}" -t "$SECS" -J >"$json" || {
        echo "bench: iperf3 via $arm failed: $(tail -c 300 "$json")" >&2; return 0; }
    m1=$(machine_busy_ticks)
    sleep 0.3
    [[ -n $pid ]] && c1=$(cpu_ticks "$pid")
    read -r gbps cpu_gb machine_gb < <(python3 - "$json" "$((c1 - c0))" "$TICK" "$pid" "$((m1 - m0))" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["end"]["sum_received"]
cpu = int(sys.argv[2]) / int(sys.argv[3])
machine = int(sys.argv[5]) / int(sys.argv[3])
gb = s["bytes"] / 1e9
print(f"{s['bits_per_second'] / 1e9:.2f}", f"{cpu / gb:.3f}" if sys.argv[4] else "nan", f"{machine / gb:.3f}")
PY
)
    record "$arm" "$round" bulk_gbps "$gbps"
    record "$arm" "$round" bulk_cpu_gb "$cpu_gb"
    record "$arm" "$round" bulk_machine_gb "$machine_gb"
    printf 'round %s  %-12s %6s Gbit/s bulk   cpu %s s/GB   machine %s s/GB\n' "$round" "$arm" "$gbps" "$cpu_gb" "$machine_gb"
}

echo "bench: ${ROUNDS} rounds x (${#ARMS[@]} arms x 2 + ${#PINNED[@]} pinned + ${#BULK_ARMS[@]} bulk) x ${SECS}s, loopback; $(nproc) CPUs, kernel $(uname -r), congestion control $(inns sysctl -n net.ipv4.tcp_congestion_control)"
for ((r = 1; r <= ROUNDS; r++)); do
    for arm in "${ARMS[@]}"; do run_arm "$arm" "$r"; done
    for arm in "${PINNED[@]}"; do run_pinned "$arm" "$r"; done
    for arm in "${BULK_ARMS[@]}"; do run_bulk "$arm" "$r"; done
done

python3 - "$RESULTS" "${!ALSO[@]}" <<'PY'
import math, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
also = sorted(sys.argv[2:])
def med(arm, measure):
    vals = [float(r[3]) for r in rows if r[0] == arm and r[2] == measure and r[3] not in ("", "nan")]
    return statistics.median(vals) if vals else float("nan")
def ratio(a, b):
    return a / b if b and not math.isnan(b) else float("nan")
print("\nmedians:")
for a in ["direct", "relay", "relay-quiet", "haproxy"] + also:
    print(f"  {a:12s} {med(a, 'rate'):9.0f} req/s   cpu {med(a, 'cpu_us'):6.1f} µs/req (user {med(a, 'user_us'):5.1f}, kernel {med(a, 'sys_us'):5.1f})"
          f"   p50 {med(a, 'p50'):7.1f} µs   p99 {med(a, 'p99'):7.1f} µs")
# Below 100 % busy the load generator (wrk and nginx sharing CPU 1) was the limit: the rate
# per busy core is what the proxy would do with its core full, assuming it scales.
for a in ("relay-1cpu", "haproxy-1cpu"):
    if not math.isnan(med(a, "core_rate")):
        print(f"  {a:12s} {med(a, 'core_rate'):9.0f} req/s on one core (busy {med(a, 'core_busy'):.0f} %, "
              f"{med(a, 'core_per_busy'):.0f} per busy core)   cpu {med(a, 'core_cpu_us'):6.1f} µs/req")
for a in ("direct", "relay", "haproxy"):
    print(f"  {a + ' bulk':12s} {med(a, 'bulk_gbps'):6.2f} Gbit/s   cpu {med(a, 'bulk_cpu_gb'):.3f} s/GB   machine {med(a, 'bulk_machine_gb'):.3f} s/GB")
print("ratios against haproxy (same run):")
direct50 = med("direct", "p50")
for a in ["relay", "relay-quiet"] + also:
    added = ratio(med(a, "p50") - direct50, med("haproxy", "p50") - direct50)
    print(f"  {a:12s} connection rate {ratio(med(a, 'rate'), med('haproxy', 'rate')):.2f} x   "
          f"cpu per connection {ratio(med(a, 'cpu_us'), med('haproxy', 'cpu_us')):.2f} x "
          f"(user {ratio(med(a, 'user_us'), med('haproxy', 'user_us')):.2f} x, kernel {ratio(med(a, 'sys_us'), med('haproxy', 'sys_us')):.2f} x)   "
          f"added p50 latency {added:.2f} x")
print(f"  {'relay-1cpu':12s} per-core rate {ratio(med('relay-1cpu', 'core_rate'), med('haproxy-1cpu', 'core_rate')):.2f} x   "
      f"per busy core {ratio(med('relay-1cpu', 'core_per_busy'), med('haproxy-1cpu', 'core_per_busy')):.2f} x")
print(f"  {'relay bulk':12s} throughput {ratio(med('relay', 'bulk_gbps'), med('haproxy', 'bulk_gbps')):.2f} x   "
      f"cpu per GB {ratio(med('relay', 'bulk_cpu_gb'), med('haproxy', 'bulk_cpu_gb')):.2f} x   "
      f"machine CPU per GB added over direct {ratio(med('relay', 'bulk_machine_gb') - med('direct', 'bulk_machine_gb'), med('haproxy', 'bulk_machine_gb') - med('direct', 'bulk_machine_gb')):.2f} x")
PY
for arm in relay relay-quiet "${!ALSO[@]}"; do
    echo "$arm: $(grep -c 'closed conn=' "$WORK/$arm.log" || true) connection lines logged, $(grep -c 'dropped while' "$WORK/$arm.log" || true) drop notices"
done

if [[ -n $PERF_DIR ]]; then
    mkdir -p "$PERF_DIR"
    echo "bench: perf record -g on the relay (pid ${PROXY_PID[relay]}) under one more rate run..." >&2
    perf record -F 999 -g -o "$PERF_DIR/perf.data" -p "${PROXY_PID[relay]}" -- sleep "$((SECS + 1))" 2>"$PERF_DIR/record.log" &
    perf_pid=$!
    sleep 0.5
    rate_run relay
    wait "$perf_pid" || true
    # Swift symbols are mangled: demangled when the toolchain is at hand.
    demangle() { if command -v swift >/dev/null; then swift demangle --simplified; else cat; fi; }
    perf report -i "$PERF_DIR/perf.data" --no-children --sort dso,sym -g none --stdio 2>/dev/null | demangle >"$PERF_DIR/report.txt" || true
    echo "perf: $(printf '%.0f' "$RPS") req/s while recorded; top entries ($PERF_DIR/report.txt):"
    # awk, not head: an early exit would end the script (pipefail) with the reader's SIGPIPE.
    awk '/^ +[0-9.]+%/ && n++ < 25' "$PERF_DIR/report.txt"
    echo "perf: by library:"
    grep -E '^ +[0-9.]+%' "$PERF_DIR/report.txt" |
        awk '{ sub("%", "", $1); share[$2] += $1 } END { for (d in share) printf "    %6.2f%%  %s\n", share[d], d }' | sort -rn
fi
