#!/usr/bin/env bash
# Single-stream throughput and CPU cost of mptcp-relay against its alternatives, on loopback.
#
# Arms, each an iperf3 client -> (proxy) -> iperf3 server under the classic mptcpize:
#   direct   iperf3 over MPTCP end to end (mptcpize on both iperf3s), no proxy
#   relay    plain TCP -> mptcp-relay -> MPTCP
#   haproxy  plain TCP -> HAProxy (mode tcp, option splice-auto, under mptcpize) -> MPTCP
#   socat    plain TCP -> socat (fork, under mptcpize) -> MPTCP
# Rounds alternate the arms (A B C D A B C D ...) so drift hits every arm alike. Prints every
# round, the medians, relay/haproxy and relay/direct ratios, and proxy CPU seconds per GB
# (utime+stime of the proxy process and its reaped children, from /proc/<pid>/stat).
#
# Runs in a network namespace of its own (lo only). Root needed.
# Usage: Benchmarks/relay-throughput.sh [--rounds N] [--seconds S] [--relay PATH] [--relay-args "..."]
# The relay arm uses .build/release/mptcp-relay (built if missing); it is skipped, with a
# note, when no relay binary can be had.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=5
SECS=8
RELAY=.build/release/mptcp-relay
RELAY_ARGS=""
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --seconds) SECS=$2; shift 2 ;;
        --relay) RELAY=$2; shift 2 ;;
        --relay-args) RELAY_ARGS=$2; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "bench: run as root (network namespace)" >&2; exit 1; }
for t in iperf3 haproxy socat mptcpize python3; do
    command -v "$t" >/dev/null || { echo "bench: '$t' missing: run scripts/setup-deps.sh" >&2; exit 1; }
done

if [[ $RELAY == .build/release/mptcp-relay && ! -x $RELAY ]] && command -v swift >/dev/null; then
    echo "bench: building the relay (release)..." >&2
    swift build -c release --product mptcp-relay >&2 || true
fi
ARMS=(direct relay haproxy socat)
if [[ ! -x $RELAY ]] || ! "$RELAY" run --help >/dev/null 2>&1; then
    echo "bench: no usable relay at $RELAY: relay arm skipped" >&2
    ARMS=(direct haproxy socat)
fi

NS=bench-$$
# shellcheck source=Benchmarks/loopback-netns.sh
source Benchmarks/loopback-netns.sh   # after the cd above: the repository root

# One iperf3 server per arm: a server busy with a lingering test cannot spoil the next arm.
declare -A SERVER_PORT=([direct]=5201 [relay]=5202 [haproxy]=5203 [socat]=5204)
declare -A FRONT_PORT=([direct]=5201 [relay]=6001 [haproxy]=6002 [socat]=6003)
declare -A PROXY_PID=()
for arm in "${ARMS[@]}"; do
    ip netns exec "$NS" mptcpize run iperf3 -s -B 127.0.0.1 -p "${SERVER_PORT[$arm]}" >"$WORK/iperf3-$arm.log" 2>&1 &
    wait_listen "${SERVER_PORT[$arm]}"
done

for arm in "${ARMS[@]}"; do
    case $arm in
        relay)
            # shellcheck disable=SC2086  # RELAY_ARGS is a list of words on purpose
            ip netns exec "$NS" "$RELAY" run --listen "127.0.0.1:${FRONT_PORT[relay]}" --upstream "127.0.0.1:${SERVER_PORT[relay]}" \
                --log-level warning $RELAY_ARGS >"$WORK/relay.log" 2>&1 &
            PROXY_PID[relay]=$! ;;
        haproxy)
            cat >"$WORK/haproxy.cfg" <<CFG
global
    maxconn 1000
defaults
    mode tcp
    option splice-auto
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:${FRONT_PORT[haproxy]}
    default_backend be
backend be
    server s1 127.0.0.1:${SERVER_PORT[haproxy]}
CFG
            ip netns exec "$NS" mptcpize run haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
            PROXY_PID[haproxy]=$! ;;
        socat)
            ip netns exec "$NS" mptcpize run socat "TCP-LISTEN:${FRONT_PORT[socat]},bind=127.0.0.1,fork,reuseaddr" \
                "TCP:127.0.0.1:${SERVER_PORT[socat]}" >"$WORK/socat.log" 2>&1 &
            PROXY_PID[socat]=$! ;;
    esac
    [[ $arm == direct ]] || wait_listen "${FRONT_PORT[$arm]}"
done

TICK=$(getconf CLK_TCK)

# MP_CAPABLE SYNs the iperf3 servers accepted: each run should add 2 (iperf3's control and
# data connections), proving the leg into the server really is MPTCP in every arm.
mp_capable() { inns nstat -asz MPTcpExtMPCapableSYNRX | awk '/MPCapableSYNRX/ {print $2}'; }

RESULTS=$WORK/results.tsv   # arm round bits_per_second bytes cpu_seconds mp_capable_syns
run_arm() {
    local arm=$1 round=$2 client=(iperf3) c0=0 c1=0 json
    [[ $arm == direct ]] && client=(mptcpize run iperf3)
    [[ -n ${PROXY_PID[$arm]:-} ]] && c0=$(cpu_ticks "${PROXY_PID[$arm]}")
    m0=$(mp_capable)
    json=$WORK/$arm-$round.json
    inns "${client[@]}" -c 127.0.0.1 -p "${FRONT_PORT[$arm]}" -t "$SECS" -J >"$json" || {
        echo "bench: iperf3 via $arm failed: $(tail -c 300 "$json")" >&2; return 1; }
    sleep 0.3   # let the proxy finish its closes before reading its CPU time
    [[ -n ${PROXY_PID[$arm]:-} ]] && c1=$(cpu_ticks "${PROXY_PID[$arm]}")
    m1=$(mp_capable)
    python3 - "$json" "$arm" "$round" "$c0" "$c1" "$TICK" "$((m1 - m0))" >>"$RESULTS" <<'PY'
import json, sys
arm, rnd, c0, c1, tick, mpc = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
s = json.load(open(sys.argv[1]))["end"]["sum_received"]
print(f"{arm}\t{rnd}\t{s['bits_per_second']}\t{s['bytes']}\t{(c1 - c0) / tick}\t{mpc}")
PY
    tail -n 1 "$RESULTS" | awk -F'\t' '{ printf "round %s  %-8s %8.2f Gbit/s  MPTCP upstreams %s", $2, $1, $3 / 1e9, $6;
        if ($1 != "direct") printf "   cpu %.2f s/GB", $5 / ($4 / 1e9); print "" }'
}

echo "bench: ${ROUNDS} rounds x ${#ARMS[@]} arms x ${SECS}s, single stream, loopback; $(nproc) CPUs, kernel $(uname -r)"
for ((r = 1; r <= ROUNDS; r++)); do
    for arm in "${ARMS[@]}"; do run_arm "$arm" "$r"; done
done

python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
arms = []
for r in rows:
    if r[0] not in arms: arms.append(r[0])
med, cpu = {}, {}
print("\nmedians:")
for a in arms:
    rs = [r for r in rows if r[0] == a]
    med[a] = statistics.median(float(r[2]) for r in rs)
    gb = sum(float(r[3]) for r in rs) / 1e9
    cpu[a] = sum(float(r[4]) for r in rs) / gb if gb else float("nan")
    extra = "" if a == "direct" else f"   cpu {cpu[a]:.2f} s/GB"
    print(f"  {a:8s} {med[a] / 1e9:8.2f} Gbit/s{extra}")
print("ratios:")
if "relay" in med:
    for b in ("haproxy", "direct", "socat"):
        if b in med: print(f"  relay/{b:8s} {med['relay'] / med[b]:.2f}")
    if "haproxy" in cpu: print(f"  cpu/GB relay/haproxy {cpu['relay'] / cpu['haproxy']:.2f}")
else:
    print("  (no relay arm)")
    if "haproxy" in med: print(f"  haproxy/direct {med['haproxy'] / med['direct']:.2f}")
PY
