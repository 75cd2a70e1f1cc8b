# Shared by the namespace testbeds (testbed.sh, testbed-fleet.sh); sourced, not run.
# The sourcing script sets TESTBED_TOOL (its name, for messages) and ROLES (the namespace
# suffixes of one testbed) first.

die() { echo "${TESTBED_TOOL:-testbed}: $*" >&2; exit 1; }

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces need CAP_NET_ADMIN)"
    command -v ip >/dev/null || die "'ip' not found: apt-get install iproute2"
}

valid_name() {
    # Interface-independent, but keep it short and shell-safe: it ends up in netns names.
    [[ $1 =~ ^[A-Za-z0-9_.-]{1,40}$ ]] || die "bad testbed name '$1' (letters, digits, _ . - ; up to 40)"
}

ns_exists() { ip netns list | awk '{print $1}' | grep -qxF -- "$1"; }

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# tbf on the egress of one interface. The burst holds ~4 ms at the rate (never under 32 KB,
# so TSO-sized segments pass without being re-segmented too often) and the queue holds ~25 ms:
# enough for one TCP flow to keep the link ~95 % busy without piling up seconds of delay.
shape() {
    local ns=$1 dev=$2 mbit=$3
    local bytes_per_s=$(( mbit * 1000000 / 8 ))
    local burst=$(( bytes_per_s * 4 / 1000 ))
    (( burst < 32768 )) && burst=32768
    nsx "$ns" tc qdisc replace dev "$dev" root tbf rate "${mbit}mbit" burst "$burst" latency 25ms
}

# Kill whatever still runs in a namespace: TERM first, KILL whatever ignores it.
kill_ns_procs() {
    local ns=$1 pids i
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z $pids ]] && return 0
    kill -TERM $pids 2>/dev/null || true
    for i in 1 2 3 4 5 6 7 8 9 10; do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [[ -z $pids ]] && return 0
        sleep 0.1
    done
    kill -KILL $pids 2>/dev/null || true
}

# What a test or a killed relay can leave outside a namespace: /etc/netns/NS (name resolution
# a test set up for it) and the relay's WAN state files, named by the namespace's cookie
# (Sources/WanManager/OwnedEndpointRecord.swift; a clean exit removes them, SIGKILL does not).
remove_ns_leftovers() {
    local ns=$1 cookie
    cookie=$(nsx "$ns" python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); print(int.from_bytes(s.getsockopt(socket.SOL_SOCKET, 71, 8), "little"))' 2>/dev/null || true)
    if [[ $cookie =~ ^[0-9]+$ ]]; then
        rm -f "/run/mptcp-relay/wan-endpoints-c$cookie" "/run/mptcp-relay/wan-health-c$cookie.json"
    fi
    rm -rf "/etc/netns/$ns"
}

# Deletes every namespace NAME-ROLE of one testbed, after killing what runs there. Idempotent.
cmd_down() {
    local name=${1:-}; [[ -n $name ]] || die "usage: down NAME"
    valid_name "$name"
    need_root
    local r
    for r in "${ROLES[@]}"; do
        ns_exists "$name-$r" || continue
        kill_ns_procs "$name-$r"
        remove_ns_leftovers "$name-$r"
        ip netns del "$name-$r" 2>/dev/null || true
    done
}
