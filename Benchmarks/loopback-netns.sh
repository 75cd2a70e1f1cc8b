# Sourced by the loopback benchmarks: a network namespace of their own (lo only), removed
# with everything in it on exit, and the helpers they share.
#   NS      the namespace (bench-PID unless set before sourcing)
#   WORK    a temporary folder, removed on exit
#   inns CMD...        run CMD in the namespace
#   wait_listen PORT   wait (10 s at most) until something listens on PORT there
#   listener_pid PORT  the process that listens on PORT there (after any exec of wrappers)
#   cpu_ticks PID      utime+stime of PID and its reaped children, in clock ticks
#   cpu_split PID      the same as two numbers: user, then kernel
NS=${NS:-bench-$$}
WORK=$(mktemp -d)
bench_cleanup() {
    local pids
    pids=$(ip netns pids "$NS" 2>/dev/null || true)
    [[ -n $pids ]] && kill $pids 2>/dev/null
    sleep 0.3
    pids=$(ip netns pids "$NS" 2>/dev/null || true)
    [[ -n $pids ]] && kill -9 $pids 2>/dev/null
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap bench_cleanup EXIT INT TERM
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
inns() { ip netns exec "$NS" "$@"; }
wait_listen() {
    for _ in $(seq 100); do
        [[ -n $(inns ss -ltnH "sport = :$1") ]] && return 0
        sleep 0.1
    done
    echo "bench: nothing listens on port $1" >&2; return 1
}
listener_pid() {
    # awk, not grep | head: under pipefail a grep that finds nothing would end the script silently.
    inns ss -ltnpH "sport = :$1" | awk 'match($0, /pid=[0-9]+/) { print substr($0, RSTART + 4, RLENGTH - 4); exit }'
}
# Every CPU's busy time (all but idle and iowait), in clock ticks: on loopback the sender's
# system call also runs the receiver's network stack, so a process's own CPU says little.
machine_busy_ticks() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
# A process's own threads and its reaped children (socat's per-connection forks) alike.
cpu_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$1/stat"
}
cpu_split() {
    awk '{ sub(/^.*\) /, ""); print $12 + $14, $13 + $15 }' "/proc/$1/stat"
}
