#!/usr/bin/env bash
# Network-namespace testbed: a LAN client, a gateway with N shaped WAN links, a server.
#
#   lan (NAME-lan) --eth0/lan0-- gw (NAME-gw) ==wan1..wanN== srv (NAME-srv)
#
# Used by the integration tests, scripts/demo.sh and the benchmarks. Addresses are fixed:
# namespaces isolate one testbed from another, so only the NAME must be unique per run.
#
# Subcommands:
#   up NAME [--wans N] [--rate MBIT] [--bare] [--nat]
#                                      create the testbed, print KEY=VALUE lines for `eval`;
#                                      --bare: no MPTCP endpoints, limits or policy routes on
#                                      the gateway (the relay's [[wan]] manager does them), and
#                                      every WAN has a main-table default route (metric 100*K
#                                      for K >= 2), as DHCP on each uplink would leave it;
#                                      --nat: the gateway masquerades LAN traffic out of each
#                                      WAN and the server has no route back to the LAN prefix,
#                                      as on a site whose ISPs route only their own addresses
#   down NAME                          kill its processes and delete it (idempotent)
#   link NAME K down|up                take WAN K down/up on both ends
#   loss NAME K PERCENT                drop PERCENT % of packets on WAN K both ways (0 removes)
#   blackhole NAME K on|off            the far side of WAN K drops everything while its link
#                                      stays up (an LTE outage, a DSL line that syncs but
#                                      does not route)
#   list                               names of the testbeds alive
#   down-all PREFIX                    down every testbed whose name starts with PREFIX
set -Eeuo pipefail

ROLES=(lan gw srv)
TESTBED_TOOL=testbed
# shellcheck source=lib/namespaces.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/namespaces.sh"

cmd_up() {
    local name=${1:-}; [[ -n $name ]] || die "usage: up NAME [--wans N] [--rate MBIT]"
    shift
    local wans=2 rate=50 bare=0 nat=0
    while (($#)); do
        case $1 in
            --bare) bare=1; shift ;;
            --nat) nat=1; shift ;;
            --wans) wans=${2:?--wans needs a number}; shift 2 ;;
            --rate) rate=${2:?--rate needs Mbit/s}; shift 2 ;;
            *) die "unknown option '$1' for up" ;;
        esac
    done
    valid_name "$name"
    [[ $wans =~ ^[1-9]$ ]] || die "--wans must be 1..9 (got '$wans')"
    [[ $rate =~ ^[1-9][0-9]*$ ]] || die "--rate must be a positive integer Mbit/s (got '$rate')"
    need_root
    for r in "${ROLES[@]}"; do
        ns_exists "$name-$r" && die "namespace $name-$r already exists (pick another NAME or run: $0 down $name)"
    done

    # On any failure, leave nothing half-built behind.
    trap 'cmd_down "$name" >/dev/null 2>&1 || true' ERR

    local lan=$name-lan gw=$name-gw srv=$name-srv r
    for r in "${ROLES[@]}"; do
        ip netns add "$name-$r"
        nsx "$name-$r" ip link set lo up
        nsx "$name-$r" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
        nsx "$name-$r" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
        # Keep IPv6 addresses across `link K down`: by default the kernel flushes them, and
        # `link K up` could not restore the routes that name them.
        nsx "$name-$r" sysctl -qw net.ipv6.conf.all.keep_addr_on_down=1 net.ipv6.conf.default.keep_addr_on_down=1
        nsx "$name-$r" sysctl -qw net.mptcp.enabled=1
    done
    nsx "$gw" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

    # LAN link (unshaped). Created directly inside the namespaces: no name clash in the root ns.
    ip link add lan0 netns "$gw" type veth peer name eth0 netns "$lan"
    nsx "$lan" ip addr add 192.168.50.2/24 dev eth0
    nsx "$lan" ip -6 addr add fd00:50::2/64 dev eth0 nodad
    nsx "$lan" ip link set eth0 up
    nsx "$gw" ip addr add 192.168.50.1/24 dev lan0
    nsx "$gw" ip -6 addr add fd00:50::1/64 dev lan0 nodad
    nsx "$gw" ip link set lan0 up
    nsx "$lan" ip route add default via 192.168.50.1
    nsx "$lan" ip -6 route add default via fd00:50::1

    local k
    for ((k = 1; k <= wans; k++)); do
        ip link add "wan$k" netns "$gw" type veth peer name "wan$k" netns "$srv"
        nsx "$gw" ip addr add "10.$k.0.1/24" dev "wan$k"
        nsx "$gw" ip -6 addr add "fd00:$k::1/64" dev "wan$k" nodad
        nsx "$srv" ip addr add "10.$k.0.2/24" dev "wan$k"
        nsx "$srv" ip -6 addr add "fd00:$k::2/64" dev "wan$k" nodad
        nsx "$gw" ip link set "wan$k" up
        nsx "$srv" ip link set "wan$k" up
        # Sysctls per device: "all" does not cover devices created later for every knob.
        nsx "$gw" sysctl -qw "net.ipv4.conf.wan$k.rp_filter=0"
        nsx "$srv" sysctl -qw "net.ipv4.conf.wan$k.rp_filter=0"
        shape "$gw" "wan$k" "$rate"
        shape "$srv" "wan$k" "$rate"

        if ((bare)); then
            if ((k >= 2)); then
                nsx "$gw" ip route add default via "10.$k.0.2" dev "wan$k" metric $((100 * k))
                nsx "$gw" ip -6 route add default via "fd00:$k::2" dev "wan$k" metric $((1024 + 100 * k))
            fi
            continue
        fi
        # Policy routing: a subflow bound to WAN k's address leaves through WAN k.
        local table=$((100 + k))
        nsx "$gw" ip route add "10.$k.0.0/24" dev "wan$k" table "$table"
        nsx "$gw" ip route add default via "10.$k.0.2" dev "wan$k" table "$table"
        nsx "$gw" ip rule add from "10.$k.0.1" lookup "$table"
        nsx "$gw" ip -6 route add "fd00:$k::/64" dev "wan$k" table "$table"
        nsx "$gw" ip -6 route add default via "fd00:$k::2" dev "wan$k" table "$table"
        nsx "$gw" ip -6 rule add from "fd00:$k::1" lookup "$table"
        if ((k >= 2)); then
            # WAN 1 carries the initial subflow; the others join as extra subflows.
            nsx "$gw" ip mptcp endpoint add "10.$k.0.1" dev "wan$k" subflow
            nsx "$gw" ip mptcp endpoint add "fd00:$k::1" dev "wan$k" subflow
        fi
    done
    nsx "$gw" ip route add default via 10.1.0.2 dev wan1
    nsx "$gw" ip -6 route add default via fd00:1::2 dev wan1
    ((bare)) || nsx "$gw" ip mptcp limits set subflows 8 add_addr_accepted 8
    nsx "$srv" ip mptcp limits set subflows 8 add_addr_accepted 8
    # A server address beyond every WAN, on no link: reaching it takes a route, so which
    # WAN a connection starts on is decided by routing, not by being on-link.
    nsx "$srv" ip addr add 10.200.0.1/32 dev lo
    nsx "$srv" ip -6 addr add fd00:200::1/128 dev lo
    if ((nat)); then
        command -v nft >/dev/null || die "'nft' not found: apt-get install nftables"
        nsx "$gw" nft -f - <<EOF
table inet testbed_nat {
    chain post {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan*" ip saddr 192.168.50.0/24 masquerade
        oifname "wan*" ip6 saddr fd00:50::/64 masquerade
    }
}
EOF
    else
        nsx "$srv" ip route add 192.168.50.0/24 via 10.1.0.1 dev wan1
        nsx "$srv" ip -6 route add fd00:50::/64 via fd00:1::1 dev wan1
    fi
    trap - ERR

    cat <<EOF
LAN_NS=$lan
GW_NS=$gw
SRV_NS=$srv
LAN_IP=192.168.50.2
LAN_IP6=fd00:50::2
GW_LAN_IP=192.168.50.1
GW_LAN_IP6=fd00:50::1
SRV_IP=10.1.0.2
SRV_IP6=fd00:1::2
SRV_FAR_IP=10.200.0.1
SRV_FAR_IP6=fd00:200::1
WANS=$wans
RATE_MBIT=$rate
EOF
}

wan_check() {
    local name=$1 k=$2
    [[ $k =~ ^[1-9]$ ]] || die "WAN index must be 1..9 (got '$k')"
    ns_exists "$name-gw" || die "no testbed '$name' (namespace $name-gw missing)"
    nsx "$name-gw" ip link show "wan$k" >/dev/null 2>&1 || die "testbed '$name' has no WAN $k"
}

cmd_link() {
    local name=${1:-} k=${2:-} state=${3:-}
    [[ -n $name && -n $k && $state =~ ^(up|down)$ ]] || die "usage: link NAME K down|up"
    need_root; wan_check "$name" "$k"
    nsx "$name-gw" ip link set "wan$k" "$state"
    nsx "$name-srv" ip link set "wan$k" "$state"
    if [[ $state == up && -z $(nsx "$name-gw" ip -4 rule show table $((100 + k))) ]]; then
        # A --bare testbed: DHCP would restore the uplink's default route; the relay
        # restores its own tables.
        if [[ $k == 1 ]]; then
            nsx "$name-gw" ip route replace default via 10.1.0.2 dev wan1
            nsx "$name-gw" ip -6 route replace default via fd00:1::2 dev wan1
            restore_lan_route "$name"
        else
            nsx "$name-gw" ip route replace default via "10.$k.0.2" dev "wan$k" metric $((100 * k))
            nsx "$name-gw" ip -6 route replace default via "fd00:$k::2" dev "wan$k" metric $((1024 + 100 * k))
        fi
    elif [[ $state == up ]]; then
        # Routes through a downed device are flushed by the kernel; put them back.
        nsx "$name-gw" ip route replace "10.$k.0.0/24" dev "wan$k" table $((100 + k))
        nsx "$name-gw" ip route replace default via "10.$k.0.2" dev "wan$k" table $((100 + k))
        nsx "$name-gw" ip -6 route replace "fd00:$k::/64" dev "wan$k" table $((100 + k))
        nsx "$name-gw" ip -6 route replace default via "fd00:$k::2" dev "wan$k" table $((100 + k))
        if [[ $k == 1 ]]; then
            nsx "$name-gw" ip route replace default via 10.1.0.2 dev wan1
            nsx "$name-gw" ip -6 route replace default via fd00:1::2 dev wan1
            restore_lan_route "$name"
        fi
    fi
}

# The server's route back to the LAN prefix over WAN 1 (flushed with the link), unless the
# testbed NATs (--nat: the server never had one).
restore_lan_route() {
    local name=$1
    nsx "$name-gw" nft list table inet testbed_nat >/dev/null 2>&1 && return 0
    nsx "$name-srv" ip route replace 192.168.50.0/24 via 10.1.0.1 dev wan1
    nsx "$name-srv" ip -6 route replace fd00:50::/64 via fd00:1::1 dev wan1
}

# Random loss with nft numgen (this kernel has no netem). One table per WAN so that changing
# one link's loss never disturbs another's; prerouting sees what arrives, postrouting what
# leaves (both forwarded and locally generated traffic).
cmd_loss() {
    local name=${1:-} k=${2:-} pct=${3:-}
    [[ -n $name && -n $k && $pct =~ ^[0-9]+$ ]] && ((pct <= 100)) || die "usage: loss NAME K PERCENT (0..100)"
    need_root; wan_check "$name" "$k"
    command -v nft >/dev/null || die "'nft' not found: apt-get install nftables"
    local table="testbed_loss_wan$k"
    nsx "$name-gw" nft delete table inet "$table" 2>/dev/null || true
    ((pct == 0)) && return 0
    nsx "$name-gw" nft -f - <<EOF
table inet $table {
    chain rx { type filter hook prerouting priority -300; iifname "wan$k" numgen random mod 100 < $pct drop; }
    chain tx { type filter hook postrouting priority 300; oifname "wan$k" numgen random mod 100 < $pct drop; }
}
EOF
}

# The far end of WAN K drops every packet, both ways, in the server namespace: the
# gateway's link, carrier and neighbour entry stay up, and nothing it sends is answered.
cmd_blackhole() {
    local name=${1:-} k=${2:-} state=${3:-}
    [[ -n $name && -n $k && $state =~ ^(on|off)$ ]] || die "usage: blackhole NAME K on|off"
    need_root; wan_check "$name" "$k"
    command -v nft >/dev/null || die "'nft' not found: apt-get install nftables"
    local table="testbed_blackhole_wan$k"
    nsx "$name-srv" nft delete table inet "$table" 2>/dev/null || true
    [[ $state == off ]] && return 0
    nsx "$name-srv" nft -f - <<EOF
table inet $table {
    chain rx { type filter hook prerouting priority -300; iifname "wan$k" drop; }
    chain tx { type filter hook postrouting priority 300; oifname "wan$k" drop; }
}
EOF
}

# A testbed is alive when its gw namespace exists; print each name once.
cmd_list() {
    ip netns list | awk '{print $1}' | sed -n 's/-gw$//p' | sort -u
}

cmd_down_all() {
    local prefix=${1:-}; [[ -n $prefix ]] || die "usage: down-all PREFIX (an empty prefix is refused on purpose)"
    need_root
    local ns name
    # Also catch half-built testbeds whose gw namespace is already gone.
    for ns in $(ip netns list | awk '{print $1}'); do
        [[ $ns == "$prefix"* ]] || continue
        name=${ns%-lan}; name=${name%-gw}; name=${name%-srv}
        [[ $name != "$ns" ]] || continue
        cmd_down "$name"
    done
}

usage() {
    sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
}

main() {
    local sub=${1:-}
    (($#)) && shift
    case $sub in
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        link) cmd_link "$@" ;;
        loss) cmd_loss "$@" ;;
        blackhole) cmd_blackhole "$@" ;;
        list) cmd_list ;;
        down-all) cmd_down_all "$@" ;;
        -h|--help|help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
