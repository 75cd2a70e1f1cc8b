#!/usr/bin/env bash
# Cost of the mptcpize shim, and connection rates under it vs the classic mptcpize.
#
#   Benchmarks/mptcpize/bench.sh
#
# Environment: BUILD_DIR (folder holding libmptcpize.so; default: a release build),
# CLASSIC_LIB (default: Debian's libmptcpwrap.so.0), RUNS (median of, default 5),
# N_EXEC (programs started per exec run, default 300), N_SOCKETS (per socket() run, default 200000), N_CONNS (per connection run, default 5000),
# WRK_SECONDS (default 3). Runs as root: everything happens on the loopback of a private
# network namespace, removed on exit. Prints figures; asserts nothing.
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
RUNS=${RUNS:-5}
N_SOCKETS=${N_SOCKETS:-200000}
N_EXEC=${N_EXEC:-300}
N_CONNS=${N_CONNS:-5000}
WRK_SECONDS=${WRK_SECONDS:-3}

die() { echo "bench: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "run as root (it creates a network namespace)"

if [[ -z ${BUILD_DIR:-} ]]; then
    (cd "$root" && swift build -c release --product mptcpize >&2 && swift build -c release --product mptcpize-cli >&2)
    BUILD_DIR=$(cd "$root" && swift build -c release --show-bin-path)
fi
OURS=$BUILD_DIR/libmptcpize.so
[[ -f $OURS ]] || die "$OURS not found; build with: swift build -c release --product mptcpize"
CLI=$BUILD_DIR/mptcpize-cli
[[ -x $CLI ]] || die "$CLI not found; build with: swift build -c release --product mptcpize-cli"
CLASSIC=${CLASSIC_LIB:-$(ls /usr/lib/*/mptcpize/libmptcpwrap.so.0 2>/dev/null | head -n1 || true)}
[[ -f $CLASSIC ]] || die "classic libmptcpwrap.so.0 not found: apt-get install mptcpize, or set CLASSIC_LIB"
CC=${CC:-cc}
command -v "$CC" >/dev/null || CC=clang

work=$(mktemp -d)
ns=mzbench$$
cleanup() {
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$CC" -O2 -o "$work/socket_loop" "$here/socket_loop.c"
"$CC" -O2 -o "$work/conn_loop" "$here/conn_loop.c"
"$CC" -O2 -o "$work/exec_loop" "$here/exec_loop.c"
ip netns add "$ns"
ip -n "$ns" link set lo up

# name => environment for both ends
declare -A ENVS=(
    [plain]=""
    [classic]="LD_PRELOAD=$CLASSIC"
    [ours]="LD_PRELOAD=$OURS"
    [ours-scoped]="LD_PRELOAD=$OURS MPTCPIZE_PORTS=1-65535"
    [ours-seccomp]=""
)
ORDER=(plain classic ours ours-scoped ours-seccomp)

# The supervisor is a parent process, not a preload: it wraps the measured program, and every
# process that program starts inherits the filter.
declare -A PREFIX=([ours-seccomp]="$CLI run --seccomp")
nsx() { local cfg=$1; shift; ip netns exec "$ns" env ${ENVS[$cfg]} ${PREFIX[$cfg]:-} "$@"; }

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "mptcpize shim benchmark: kernel $(uname -r), $(nproc) cores, median of $RUNS runs"
echo "ours: $OURS"
echo "classic: $CLASSIC"
echo
echo "== exec cost: /bin/true started $N_EXEC times per run, CPU microseconds (user+sys) per program"
echo "   what the preload costs every process it is loaded into (loading, relocation, constructor)"
declare -A exec_samples=()
for _ in $(seq "$RUNS"); do
    for cfg in "${ORDER[@]}"; do
        exec_samples[$cfg]+="$(nsx "$cfg" "$work/exec_loop" "$N_EXEC" /bin/true) "
    done
done
declare -A exec_med=()
for cfg in "${ORDER[@]}"; do exec_med[$cfg]=$(tr ' ' '\n' <<<"${exec_samples[$cfg]}" | grep . | median); done
printf "%10s %10s %10s %12s %13s %14s %16s\n" plain classic ours ours-scoped ours-seccomp "ours/classic" "seccomp/classic"
printf "%10s %10s %10s %12s %13s %14s %16s\n" "${exec_med[plain]}" "${exec_med[classic]}" "${exec_med[ours]}" \
    "${exec_med[ours-scoped]}" "${exec_med[ours-seccomp]}" "$(ratio "${exec_med[ours]}" "${exec_med[classic]}")" \
    "$(ratio "${exec_med[ours-seccomp]}" "${exec_med[classic]}")"
echo

# Configurations alternate inside every run (A B C D A B C D ...) so that load changing over
# time (other jobs on the machine) spreads over all of them instead of skewing one.
echo "== socket() cost, ns per call incl. close() ($N_SOCKETS calls per run)"
echo "   ours-scoped creates TCP at socket() and converts at connect/listen (docs/mptcpize.md)"
printf "%-8s %10s %10s %10s %12s %13s %14s %16s\n" kind plain classic ours ours-scoped ours-seccomp "ours/classic" "seccomp/classic"
for kind in tcp udp invalid; do
    declare -A samples=()
    for _ in $(seq "$RUNS"); do
        for cfg in "${ORDER[@]}"; do
            samples[$cfg]+="$(nsx "$cfg" "$work/socket_loop" "$kind" "$N_SOCKETS") "
        done
    done
    declare -A med=()
    for cfg in "${ORDER[@]}"; do med[$cfg]=$(tr ' ' '\n' <<<"${samples[$cfg]}" | grep . | median); done
    printf "%-8s %10s %10s %10s %12s %13s %14s %16s\n" "$kind" "${med[plain]}" "${med[classic]}" "${med[ours]}" \
        "${med[ours-scoped]}" "${med[ours-seccomp]}" "$(ratio "${med[ours]}" "${med[classic]}")" \
        "$(ratio "${med[ours-seccomp]}" "${med[classic]}")"
done

echo
echo "== connection rate on loopback, client and server under the same wrapper"
echo "   seq: one client, connect+request+read+close in a loop ($N_CONNS per run)"
echo "   wrk: wrk -t2 -c16 -H 'Connection: close' for ${WRK_SECONDS}s per run"
declare -A port_of=() seq_samples=() wrk_samples=()
servers=()
port=20000
for cfg in "${ORDER[@]}"; do
    port=$((port + 1))
    port_of[$cfg]=$port
    nsx "$cfg" "$work/conn_loop" server "$port" &
    servers+=($!)
done
for cfg in "${ORDER[@]}"; do
    for _ in $(seq 50); do ip netns exec "$ns" ss -Hltn "sport = :${port_of[$cfg]}" | grep -q . && break; sleep 0.1; done
done
for _ in $(seq "$RUNS"); do
    for cfg in "${ORDER[@]}"; do
        seq_samples[$cfg]+="$(nsx "$cfg" "$work/conn_loop" client "${port_of[$cfg]}" "$N_CONNS") "
        if command -v wrk >/dev/null; then
            wrk_samples[$cfg]+="$(nsx "$cfg" wrk -t2 -c16 -d"${WRK_SECONDS}s" -H "Connection: close" \
                "http://127.0.0.1:${port_of[$cfg]}/" | awk '/Requests\/sec/ {printf "%.0f", $2}') "
        fi
    done
done
kill "${servers[@]}" 2>/dev/null || true
wait "${servers[@]}" 2>/dev/null || true  # reaped here, quietly
printf "%-12s %12s %12s %14s\n" config "seq conn/s" "wrk req/s" "vs classic"
for cfg in "${ORDER[@]}"; do
    seq_rate=$(tr ' ' '\n' <<<"${seq_samples[$cfg]}" | grep . | median)
    wrk_rate=$(tr ' ' '\n' <<<"${wrk_samples[$cfg]:-0}" | grep . | median)
    [[ $cfg == classic ]] && { classic_seq=$seq_rate; classic_wrk=$wrk_rate; }
    vs=-
    [[ -n ${classic_seq:-} && $cfg != plain ]] && vs="$(ratio "$seq_rate" "$classic_seq") / $(ratio "$wrk_rate" "$classic_wrk")"
    printf "%-12s %12s %12s %14s\n" "$cfg" "$seq_rate" "$wrk_rate" "$vs"
done
echo "MPTcpExt MPCapableSYNRX in the namespace: $(ip netns exec "$ns" awk '/^MPTcpExt:/ && ++n == 2 {print $2}' /proc/net/netstat)"
