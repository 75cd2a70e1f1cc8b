#!/usr/bin/env bash
# Does the admin listener cost the data path anything? iperf3 through mptcp-relay over the
# two-WAN testbed, alternating rounds without scraping and with /metrics and
# /api/connections each scraped 10 times a second (20 requests/s in all, each a snapshot
# of every worker). Prints every round, the medians, their ratio, and the scrape latency.
# A benchmark, not a test: it prints figures, it asserts nothing.
#
# Usage: Benchmarks/admin-scrape.sh [--rounds N] [--seconds S] [--rate MBIT] [--relay PATH]
# Root needed (network namespaces). Defaults: 4 rounds of 8 s per arm, links 2 x 200 Mbit/s
# (fast enough that the relay's CPU, not the shaper, could be the limit).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=4
SECS=8
RATE=200
RELAY=.build/release/mptcp-relay
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --seconds) SECS=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --relay) RELAY=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "bench: run as root (network namespaces)" >&2; exit 1; }
if [[ ! -x $RELAY ]]; then
    echo "bench: building the relay (release)..." >&2
    swift build -c release --product mptcp-relay >&2
fi

NAME=bench-admin-$$
LOG=$(mktemp -d)
SCRAPER=
cleanup() {
    [[ -n $SCRAPER ]] && kill "$SCRAPER" 2>/dev/null || true
    [[ -n ${RELAY_PID:-} ]] && kill "$RELAY_PID" 2>/dev/null || true
    [[ -n ${IPERF_PID:-} ]] && kill "$IPERF_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    scripts/testbed.sh down "$NAME" >/dev/null 2>&1 || true
    rm -rf "$LOG"
}
trap cleanup EXIT INT TERM
eval "$(scripts/testbed.sh up "$NAME" --wans 2 --rate "$RATE")"

wait_listen() {  # NS PORT
    for _ in $(seq 100); do
        [[ -n $(ip netns exec "$1" ss -ltnH "sport = :$2") ]] && return 0
        sleep 0.1
    done
    echo "bench: nothing listens on port $2 in $1" >&2; return 1
}
mbits() { python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))'; }

ip netns exec "$SRV_NS" mptcpize run iperf3 -s -p 5201 >"$LOG/iperf3-s.log" 2>&1 &
IPERF_PID=$!
wait_listen "$SRV_NS" 5201
ip netns exec "$GW_NS" "$RELAY" run --listen "$GW_LAN_IP:5201" --upstream "$SRV_IP:5201" --admin 127.0.0.1:9180 --log-level warning >"$LOG/relay.log" 2>&1 &
RELAY_PID=$!
wait_listen "$GW_NS" 5201
wait_listen "$GW_NS" 9180

# 10 requests/s to each path, in the gateway namespace; one line per request: ms, or "error ...".
cat >"$LOG/scrape.py" <<'PY'
import sys, time, urllib.request, threading
out = open(sys.argv[1], "a")
def loop(path):
    while True:
        t0 = time.monotonic()
        try:
            urllib.request.urlopen("http://127.0.0.1:9180" + path, timeout=5).read()
            out.write("%.2f\n" % ((time.monotonic() - t0) * 1000))
        except Exception as e:
            out.write("error %s %s\n" % (path, e))
        out.flush()
        time.sleep(max(0, 0.1 - (time.monotonic() - t0)))
for p in ("/metrics", "/api/connections"):
    threading.Thread(target=loop, args=(p,), daemon=True).start()
while True: time.sleep(1)
PY

quiet=(); scraped=()
for r in $(seq "$ROUNDS"); do
    q=$(ip netns exec "$LAN_NS" iperf3 -c "$GW_LAN_IP" -p 5201 -t "$SECS" -J | mbits)
    quiet+=("$q")
    # ip netns exec execs in place: $! is the scraper itself, so kill stops it.
    ip netns exec "$GW_NS" python3 "$LOG/scrape.py" "$LOG/scrape-ms.txt" & SCRAPER=$!
    sleep 0.5
    s=$(ip netns exec "$LAN_NS" iperf3 -c "$GW_LAN_IP" -p 5201 -t "$SECS" -J | mbits)
    kill "$SCRAPER" 2>/dev/null; wait "$SCRAPER" 2>/dev/null || true; SCRAPER=
    scraped+=("$s")
    printf 'round %d: no scraping %8s Mbit/s   scraped 20/s %8s Mbit/s\n' "$r" "$q" "$s"
done

python3 - "${quiet[*]}" "${scraped[*]}" "$LOG/scrape-ms.txt" <<'PY'
import statistics, sys
q = [float(x) for x in sys.argv[1].split()]; s = [float(x) for x in sys.argv[2].split()]
lines = [l.strip() for l in open(sys.argv[3])]
errors = [l for l in lines if l.startswith("error")]
ms = sorted(float(l) for l in lines if l and not l.startswith("error"))
mq, msd = statistics.median(q), statistics.median(s)
print("median without scraping: %8.1f Mbit/s" % mq)
print("median scraped 20/s:     %8.1f Mbit/s" % msd)
print("ratio scraped/quiet:     %8.3f" % (msd / mq))
if ms:
    print("scrapes: %d, latency median %.1f ms, p99 %.1f ms, max %.1f ms; failed: %d" % (len(ms), ms[len(ms)//2], ms[int(len(ms)*0.99)], ms[-1], len(errors)))
for e in errors[:5]: print("  " + e)
PY
