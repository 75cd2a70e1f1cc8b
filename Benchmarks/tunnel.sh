#!/usr/bin/env bash
# The tunnel's costs, measured in the namespace testbed (figures, never assertions):
#   1. connection setup: time from connect() to the first response byte, for a LAN client
#      going through gateway (--via) and aggregation server, with TCP Fast Open (header and
#      request in the SYN) and without (--no-fast-open); arms alternate A B A B.
#   2. throughput: iperf3 from the LAN through the tunnel to a plain TCP iperf3 server,
#      against forward mode (gateway relay straight to an MPTCP iperf3 server).
# Usage: Benchmarks/tunnel.sh [--rate MBIT] [--connections N] [--rounds R] [--seconds S]
# --rate shapes each of the two WANs (default 10000: effectively unshaped, so CPU is the bound).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=10000; CONNS=200; ROUNDS=3; SECS=5
while (($#)); do
    case $1 in
        --rate) RATE=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --seconds) SECS=$2; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "tunnel.sh: run as root" >&2; exit 1; }
RELAY=${MPTCP_RELAY_BIN:-.build/release/mptcp-relay}
[[ -x $RELAY ]] || swift build -c release --product mptcp-relay >&2

NAME=tb-tun-$$
WORK=$(mktemp -d)
cleanup() { scripts/testbed.sh down "$NAME" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
eval "$(scripts/testbed.sh up "$NAME" --wans 2 --rate "$RATE")"
WEB=198.18.0.80
ip netns exec "$SRV_NS" ip addr add $WEB/32 dev lo
for ns in "$GW_NS" "$SRV_NS"; do ip netns exec "$ns" sysctl -qw net.ipv4.tcp_fastopen=3; done
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$WORK/key"; chmod 600 "$WORK/key"

bg() { local ns=$1 log=$2; shift 2; ip netns exec "$ns" "$@" > "$WORK/$log" 2>&1 & }
wait_port() { for _ in $(seq 100); do ip netns exec "$1" ss -ltnH "sport = :$2" | grep -q . && return 0; sleep 0.1; done; echo "port $2 in $1 never opened" >&2; exit 1; }

# Servers: a one-line responder for setup time, plain and MPTCP iperf3 for throughput.
cat > "$WORK/responder.py" <<'PY'
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(512)
def serve(c):
    try:
        c.recv(4096); c.sendall(b"ok\n")
    finally:
        c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
cat > "$WORK/setup.py" <<'PY'
import socket, statistics, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
times = []
for _ in range(n):
    t = time.perf_counter()
    s = socket.create_connection((host, port)); s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    if not s.recv(16): raise SystemExit("no answer")
    times.append(time.perf_counter() - t); s.close()
print("%.1f" % (statistics.median(times) * 1e6))
PY
bg "$SRV_NS" responder.log python3 "$WORK/responder.py" $WEB 8000
bg "$SRV_NS" responder2.log python3 "$WORK/responder.py" $WEB 8001
bg "$SRV_NS" iperf-plain.log iperf3 -s -B $WEB -p 5201
bg "$SRV_NS" iperf-mptcp.log mptcpize run iperf3 -s -B "$SRV_IP" -p 5202
bg "$SRV_NS" tunnel-server.log "$RELAY" run --listen "$SRV_IP:4000" --server --key-file "$WORK/key" --allow $WEB/32 --log-level warning
wait_port "$SRV_NS" 4000
bg "$GW_NS" gw-tfo.log "$RELAY" run --listen 0.0.0.0:7000 --redirect --via "$SRV_IP:4000" --key-file "$WORK/key" --log-level warning
bg "$GW_NS" gw-notfo.log "$RELAY" run --listen 0.0.0.0:7001 --redirect --via "$SRV_IP:4000" --key-file "$WORK/key" --no-fast-open --log-level warning
bg "$GW_NS" gw-forward.log "$RELAY" run --listen "$GW_LAN_IP:7002" --upstream "$SRV_IP:5202" --log-level warning
for p in 7000 7001 7002; do wait_port "$GW_NS" $p; done
wait_port "$SRV_NS" 8000; wait_port "$SRV_NS" 8001; wait_port "$SRV_NS" 5201; wait_port "$SRV_NS" 5202

# LAN traffic to the web address: ports 8000 and 5201 through the tunnel gateway with Fast
# Open, port 8001 (a second responder) through the one without.
ip netns exec "$GW_NS" nft -f - <<NFT
table ip bench_tunnel {
    chain pre {
        type nat hook prerouting priority dstnat;
        iifname "lan0" ip daddr $WEB tcp dport 8000 redirect to :7000
        iifname "lan0" ip daddr $WEB tcp dport 8001 redirect to :7001
        iifname "lan0" ip daddr $WEB tcp dport 5201 redirect to :7000
    }
}
NFT

echo "tunnel benchmark: 2 WANs at $RATE Mbit/s, kernel $(uname -r), $(nproc) CPUs"
fo_before=$(ip netns exec "$SRV_NS" nstat -az TcpExtTCPFastOpenPassive | awk '/TCPFastOpenPassive/ {print $2}')
declare -a TFO NOTFO
for r in $(seq "$ROUNDS"); do
    a=$(ip netns exec "$LAN_NS" python3 "$WORK/setup.py" $WEB 8000 "$CONNS")
    b=$(ip netns exec "$LAN_NS" python3 "$WORK/setup.py" $WEB 8001 "$CONNS")
    TFO+=("$a"); NOTFO+=("$b")
    echo "round $r  setup (connect -> first byte, median of $CONNS): fast open ${a} us, without ${b} us"
done
fo_after=$(ip netns exec "$SRV_NS" nstat -az TcpExtTCPFastOpenPassive | awk '/TCPFastOpenPassive/ {print $2}')
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mt=$(median "${TFO[@]}"); mn=$(median "${NOTFO[@]}")
echo "setup medians: fast open $mt us, without $mn us, ratio $(awk -v a="$mt" -v b="$mn" 'BEGIN {printf "%.2f", a/b}'); SYNs carrying data at the server: $((fo_after - fo_before))"

declare -a TUN FWD
for r in $(seq "$ROUNDS"); do
    t=$(ip netns exec "$LAN_NS" iperf3 -c $WEB -p 5201 -t "$SECS" -J | python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))')
    f=$(ip netns exec "$LAN_NS" iperf3 -c "$GW_LAN_IP" -p 7002 -t "$SECS" -J | python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))')
    TUN+=("$t"); FWD+=("$f")
    echo "round $r  throughput: tunnel $t Mbit/s, forward $f Mbit/s"
done
mt=$(median "${TUN[@]}"); mf=$(median "${FWD[@]}")
echo "throughput medians: tunnel $mt Mbit/s, forward $mf Mbit/s, ratio $(awk -v a="$mt" -v b="$mf" 'BEGIN {printf "%.2f", a/b}')"
