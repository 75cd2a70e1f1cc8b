#!/usr/bin/env bash
# Demo: a legacy TCP client gets the bandwidth of two links through mptcp-relay.
#
# Builds the relay (release), creates a namespace testbed (LAN client, gateway with two WAN
# links shaped to RATE Mbit/s each, server), runs an MPTCP iperf3 server, then measures
#   1. the client straight to the server: plain TCP, routed over one link;
#   2. the client through the relay on the gateway: TCP in, MPTCP over both links out.
# Prints both figures and their ratio; removes everything on exit. Run as root.
# Environment: RATE (Mbit/s per link, default 50), SECONDS_PER_RUN (default 10),
# MPTCP_RELAY_BIN (use this relay binary instead of building one).
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-50}
DURATION=${SECONDS_PER_RUN:-10}
PORT=5201

[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (network namespaces)" >&2; exit 1; }
scripts/setup-deps.sh

if [[ -n ${MPTCP_RELAY_BIN:-} ]]; then
    RELAY=$MPTCP_RELAY_BIN   # a relay built elsewhere
else
    echo "demo: building mptcp-relay (release)..." >&2
    swift build -c release --product mptcp-relay >&2
    RELAY=$(swift build -c release --show-bin-path)/mptcp-relay
fi

NAME=demo-$$
cleanup() { scripts/testbed.sh down "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM
scripts/testbed.sh down-all "demo-" >/dev/null 2>&1 || true   # leftovers of an interrupted run
eval "$(scripts/testbed.sh up "$NAME" --wans 2 --rate "$RATE")"

wait_listen() {  # NS PORT
    for _ in $(seq 100); do
        [[ -n $(ip netns exec "$1" ss -ltnH "sport = :$2") ]] && return 0
        sleep 0.1
    done
    echo "demo: nothing listens on port $2 in $1" >&2; return 1
}

# Mbit/s received, from iperf3's JSON on stdin.
mbits() { python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))'; }

LOG=$(mktemp -d)
trap 'cleanup; rm -rf "$LOG"' EXIT INT TERM

ip netns exec "$SRV_NS" mptcpize run iperf3 -s -p "$PORT" >"$LOG/iperf3-s.log" 2>&1 &
wait_listen "$SRV_NS" "$PORT"

echo "demo: [1/2] LAN -> server directly, plain TCP over one ${RATE} Mbit/s link (${DURATION}s)..." >&2
single=$(ip netns exec "$LAN_NS" iperf3 -c "$SRV_IP" -p "$PORT" -t "$DURATION" -J | mbits)

ip netns exec "$GW_NS" "$RELAY" run --listen "$GW_LAN_IP:$PORT" --upstream "$SRV_IP:$PORT" >"$LOG/relay.log" 2>&1 &
wait_listen "$GW_NS" "$PORT"
joins0=$(ip netns exec "$SRV_NS" nstat -asz MPTcpExtMPJoinSynRx | awk '/MPJoinSynRx/ {print $2}')

echo "demo: [2/2] LAN -> mptcp-relay on the gateway -> server, MPTCP over 2 links (${DURATION}s)..." >&2
relayed=$(ip netns exec "$LAN_NS" iperf3 -c "$GW_LAN_IP" -p "$PORT" -t "$DURATION" -J | mbits)
joins1=$(ip netns exec "$SRV_NS" nstat -asz MPTcpExtMPJoinSynRx | awk '/MPJoinSynRx/ {print $2}')

echo
echo "relay log:"
sed 's/^/  /' "$LOG/relay.log" | tail -n 5
echo
printf 'single path (plain TCP, one link):     %8s Mbit/s\n' "$single"
printf 'through mptcp-relay (MPTCP, 2 links):  %8s Mbit/s\n' "$relayed"
printf 'ratio:                                 %8s x   (links: 2 x %s Mbit/s; MP_JOINs seen by server: %s)\n' \
    "$(python3 -c "print('%.2f' % ($relayed / $single))")" "$RATE" "$((joins1 - joins0))"
