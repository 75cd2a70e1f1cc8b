#!/usr/bin/env bash
# UDP through the tunnel against the same traffic routed over one path (issue 23), in the
# namespace testbed (2 WANs shaped to --rate each). Figures, never assertions.
#
# Arms, alternating per round (A B A B ...) so that drift hits both alike:
#   tunnel    LAN -> gateway (transparent, udp = true) -> MPTCP over both WANs -> our
#             aggregation server -> plain UDP to a host beyond it (198.18.0.80)
#   one path  the same LAN client to a second address on that host (198.18.0.90), excluded
#             from interception: routed by the gateway over WAN 1, as without the relay
# Measures:
#   1. iperf3 -u, 1,200-byte datagrams, offered at 50/90/120 % of the links' sum: delivered
#      Mbit/s and loss
#   2. added latency: 64-byte ping-pong RTT p50/p99, idle; and the one-way delay p50/p99 of
#      a 90 %-load flow's own datagrams (udp-probe.py: namespaces share one clock)
#   3. a 30 MB QUIC download (aioquic, scripts/lib/quic-peer.py): Mbit/s
# Prints every round, medians, and ratios tunnel / one path.
# Usage: Benchmarks/udp.sh [--rate MBIT] [--rounds N] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=50; ROUNDS=3; SECS=6
while (($#)); do
    case $1 in
        --rate) RATE=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --seconds) SECS=$2; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "udp.sh: run as root" >&2; exit 1; }
PY=.build/test-venv/bin/python3
[[ -x $PY ]] || { echo "udp.sh: $PY missing: run scripts/setup-deps.sh (installs aioquic)" >&2; exit 1; }
RELAY=${MPTCP_RELAY_BIN:-.build/release/mptcp-relay}
[[ -x $RELAY ]] || swift build -c release --product mptcp-relay >&2

NAME=tb-udp-$$
WORK=$(mktemp -d)
cleanup() { scripts/testbed.sh down "$NAME" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
eval "$(scripts/testbed.sh up "$NAME" --wans 2 --rate "$RATE")"
TUN=198.18.0.80; ONE=198.18.0.90
for a in $TUN $ONE; do ip netns exec "$SRV_NS" ip addr add $a/32 dev lo; done
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$WORK/key"; chmod 600 "$WORK/key"
bg() { local ns=$1 log=$2; shift 2; ip netns exec "$ns" "$@" > "$WORK/$log" 2>&1 & }
wait_log() { for _ in $(seq 100); do grep -q "$2" "$WORK/$1" 2>/dev/null && return 0; sleep 0.1; done; echo "no '$2' in $1" >&2; cat "$WORK/$1" >&2; exit 1; }

cat > "$WORK/server.toml" <<CFG
log_level = "warning"
[[listener]]
listen = "$SRV_IP:4000"
mode = "tunnel-server"
key_file = "$WORK/key"
allow = ["$TUN/32"]
CFG
cat > "$WORK/gateway.toml" <<CFG
log_level = "warning"
[[listener]]
listen = "[::]:7000"
mode = "transparent"
via = "$SRV_IP:4000"
key_file = "$WORK/key"
udp = true
[interception]
lan_interfaces = ["lan0"]
exclude = ["$ONE/32", "10.0.0.0/8", "192.168.0.0/16", "fc00::/7", "fe80::/10"]
CFG
"$RELAY" nft --config "$WORK/gateway.toml" | ip netns exec "$GW_NS" nft -f -
"$RELAY" nft --config "$WORK/gateway.toml" --routes | while read -r line; do ip netns exec "$GW_NS" $line; done
bg "$SRV_NS" server.log "$RELAY" run --config "$WORK/server.toml"
bg "$GW_NS" gateway.log "$RELAY" run --config "$WORK/gateway.toml"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=bench -days 2 \
    -keyout "$WORK/qkey.pem" -out "$WORK/qcert.pem" 2>/dev/null
for a in $TUN $ONE; do
    bg "$SRV_NS" "iperf-$a.log" iperf3 -s -B $a
    bg "$SRV_NS" "quic-$a.log" $PY scripts/lib/quic-peer.py serve --host $a --port 4433 --cert "$WORK/qcert.pem" --key "$WORK/qkey.pem"
    bg "$SRV_NS" "sink-$a.log" python3 scripts/lib/udp-probe.py sink --host $a --port 7001
    bg "$SRV_NS" "echo-$a.log" python3 scripts/lib/udp-probe.py sink --host $a --port 7002 --echo
    wait_log "quic-$a.log" listening; wait_log "sink-$a.log" listening; wait_log "echo-$a.log" listening
done
sleep 1
lan() { ip netns exec "$LAN_NS" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

declare -A R
SUM=$((2 * RATE))
for round in $(seq "$ROUNDS"); do
    for arm in tunnel one; do
        a=$TUN; [[ $arm == one ]] && a=$ONE
        for pct in 50 90 120; do
            rate=$((SUM * pct / 100))
            # -w 4M: a receiver buffer for the bursts in-order delivery makes (docs/udp.md).
            out=$(lan iperf3 -c $a -u -b ${rate}M -l 1200 -t "$SECS" -w 4M -J)
            # Delivered: the offered rate less what the receiver counted lost.
            R[$arm,rate$pct]+=" $(json "round(d['end']['sum']['bits_per_second']*(1-d['end']['sum']['lost_percent']/100)/1e6,1)" <<<"$out")"
            R[$arm,loss$pct]+=" $(json "round(d['end']['sum']['lost_percent'],2)" <<<"$out")"
        done
        out=$(lan python3 scripts/lib/udp-probe.py pingpong --host $a --port 7002 --count 200 --interval 5)
        R[$arm,rtt50]+=" $(json "d['rtt_p50_ms']" <<<"$out")"; R[$arm,rtt99]+=" $(json "d['rtt_p99_ms']" <<<"$out")"
        out=$(lan python3 scripts/lib/udp-probe.py send --host $a --port 7001 --mbit $((SUM * 90 / 100)) --size 1200 --seconds "$SECS")
        R[$arm,owd50]+=" $(json "d['delay_p50_ms']" <<<"$out")"; R[$arm,owd99]+=" $(json "d['delay_p99_ms']" <<<"$out")"
        R[$arm,owdloss]+=" $(json "d['lost_pct']" <<<"$out")"
        out=$(lan $PY scripts/lib/quic-peer.py fetch --host $a --port 4433 --size 30000000)
        R[$arm,quic]+=" $(json "d['mbit'] if d['intact'] else -1" <<<"$out")"
        echo "round $round $arm: done" >&2
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ratio() { python3 -c "a,b=$1,$2; print('%.2f x' % (a/b) if b else '-')"; }
echo
echo "UDP through the tunnel vs routed over one path: 2 x $RATE Mbit/s WANs, $ROUNDS rounds of $SECS s (medians; every round in brackets)"
printf '%-44s %-28s %-28s %s\n' "" "tunnel" "one path" "tunnel / one path"
row() {  # label key
    local t o; t=$(median <<<"${R[tunnel,$2]}"); o=$(median <<<"${R[one,$2]}")
    printf '%-44s %-28s %-28s %s\n' "$1" "$t [${R[tunnel,$2]# }]" "$o [${R[one,$2]# }]" "$(ratio "$t" "$o")"
}
for pct in 50 90 120; do
    row "iperf3 -u at $pct % ($((SUM * pct / 100)) Mbit/s): delivered" rate$pct
    row "  loss %" loss$pct
done
row "ping-pong 64 B idle: RTT p50 ms" rtt50
row "ping-pong 64 B idle: RTT p99 ms" rtt99
row "one-way delay at 90 % load: p50 ms" owd50
row "one-way delay at 90 % load: p99 ms" owd99
row "  loss % of that flow" owdloss
row "QUIC 30 MB download: Mbit/s" quic
echo
ip netns exec "$GW_NS" true
