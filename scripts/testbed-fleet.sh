#!/usr/bin/env bash
# Network-namespace testbed of an aggregation-server fleet behind a stateless L4 balancer:
#
#   lan --eth0/lan0-- gw ==wan1,wan2 (shaped)== lb --s1-- srv1
#                                                  --s2-- srv2
#
# The balanced address (VIP, 198.51.100.1) sits on both servers' loopback, as with IPVS
# direct routing or Katran: the balancer forwards without rewriting anything and picks the
# server by a hash of the 4-tuple (nft `jhash` sets a mark, the mark picks a routing table),
# so every packet of one TCP flow reaches the same server and nothing is remembered
# (no conntrack: `notrack`). Replies go back through lb by the servers' default route.
# Each server also has its own address (ADV1/ADV2 on loopback) that lb routes straight to
# it: what `[server] advertise` announces. The gateway is like testbed.sh --bare: no MPTCP
# endpoints, limits or policy routes, one main-table default route per WAN (metric 100*K
# for K >= 2); the relay's [[wan]] manager does the rest.
#
# Subcommands:
#   up NAME [--rate MBIT]   create it, print KEY=VALUE lines for `eval`
#   down NAME               kill its processes and delete it (idempotent)
#   drain NAME K            the balancer stops sending new flows to server K (what a health
#                           check does once the server is gone); `drain NAME 0` undoes it
#   list                    names of the fleet testbeds alive
set -Eeuo pipefail

ROLES=(lan gw lb srv1 srv2)
TESTBED_TOOL=testbed-fleet
VIP=198.51.100.1
ADV=(198.51.100.11 198.51.100.12)

# shellcheck source=lib/namespaces.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/namespaces.sh"

# The balancer's rule set. `pool` lists the servers new flows may go to (1, 2 or "1 2").
# A mark of 0 would mean "no mark": marks are 1 + hash, table = 100 + mark.
balancer_rules() {
    local pool=($1) map="" i
    for i in "${!pool[@]}"; do map+="$i : ${pool[$i]}, "; done
    cat <<EOF
table ip fleet_lb {
    chain pre {
        type filter hook prerouting priority raw; policy accept;
        ip daddr $VIP notrack
        ip saddr $VIP notrack
        ip daddr $VIP ip protocol tcp meta mark set jhash ip saddr . tcp sport . ip daddr . tcp dport mod ${#pool[@]} seed 0x5eed map { ${map%, } }
    }
}
EOF
}

cmd_up() {
    local name=${1:-}; [[ -n $name ]] || die "usage: up NAME [--rate MBIT]"
    shift
    local rate=50
    while (($#)); do
        case $1 in
            --rate) rate=${2:?--rate needs Mbit/s}; shift 2 ;;
            *) die "unknown option '$1' for up" ;;
        esac
    done
    valid_name "$name"
    [[ $rate =~ ^[1-9][0-9]*$ ]] || die "--rate must be a positive integer Mbit/s (got '$rate')"
    need_root
    command -v nft >/dev/null || die "'nft' not found: apt-get install nftables"
    local r
    for r in "${ROLES[@]}"; do
        ns_exists "$name-$r" && die "namespace $name-$r already exists (pick another NAME or run: $0 down $name)"
    done
    trap 'cmd_down "$name" >/dev/null 2>&1 || true' ERR

    local lan=$name-lan gw=$name-gw lb=$name-lb
    for r in "${ROLES[@]}"; do
        ip netns add "$name-$r"
        nsx "$name-$r" ip link set lo up
        nsx "$name-$r" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
        nsx "$name-$r" sysctl -qw net.mptcp.enabled=1
    done
    nsx "$gw" sysctl -qw net.ipv4.ip_forward=1
    nsx "$lb" sysctl -qw net.ipv4.ip_forward=1

    ip link add lan0 netns "$gw" type veth peer name eth0 netns "$lan"
    nsx "$lan" ip addr add 192.168.50.2/24 dev eth0
    nsx "$lan" ip link set eth0 up
    nsx "$gw" ip addr add 192.168.50.1/24 dev lan0
    nsx "$gw" ip link set lan0 up
    nsx "$lan" ip route add default via 192.168.50.1

    local k
    for k in 1 2; do
        ip link add "wan$k" netns "$gw" type veth peer name "wan$k" netns "$lb"
        nsx "$gw" ip addr add "10.$k.0.1/24" dev "wan$k"
        nsx "$lb" ip addr add "10.$k.0.2/24" dev "wan$k"
        nsx "$gw" ip link set "wan$k" up
        nsx "$lb" ip link set "wan$k" up
        nsx "$gw" sysctl -qw "net.ipv4.conf.wan$k.rp_filter=0"
        nsx "$lb" sysctl -qw "net.ipv4.conf.wan$k.rp_filter=0"
        shape "$gw" "wan$k" "$rate"
        shape "$lb" "wan$k" "$rate"
    done
    nsx "$gw" ip route add default via 10.1.0.2 dev wan1
    nsx "$gw" ip route add default via 10.2.0.2 dev wan2 metric 200
    # The servers talk to the gateway's WAN addresses (on-link here); its LAN is behind WAN 1.
    nsx "$lb" ip route add 192.168.50.0/24 via 10.1.0.1 dev wan1

    for k in 1 2; do
        local srv=$name-srv$k
        ip link add "s$k" netns "$lb" type veth peer name eth0 netns "$srv"
        nsx "$lb" ip addr add "10.10.$k.1/24" dev "s$k"
        nsx "$srv" ip addr add "10.10.$k.2/24" dev eth0
        nsx "$lb" ip link set "s$k" up
        nsx "$srv" ip link set eth0 up
        nsx "$lb" sysctl -qw "net.ipv4.conf.s$k.rp_filter=0"
        nsx "$srv" sysctl -qw net.ipv4.conf.eth0.rp_filter=0
        nsx "$srv" ip route add default via "10.10.$k.1" dev eth0
        nsx "$srv" ip addr add "$VIP/32" dev lo
        nsx "$srv" ip addr add "${ADV[$((k - 1))]}/32" dev lo
        # The server's own address: routed straight to it, never balanced.
        nsx "$lb" ip route add "${ADV[$((k - 1))]}/32" via "10.10.$k.2" dev "s$k"
        # Flows the hash gave mark k go to server k.
        nsx "$lb" ip route add default via "10.10.$k.2" dev "s$k" table $((100 + k))
        nsx "$lb" ip rule add fwmark "$k" lookup $((100 + k)) priority 50
    done
    balancer_rules "1 2" | nsx "$lb" nft -f -
    trap - ERR

    cat <<EOF
LAN_NS=$lan
GW_NS=$gw
LB_NS=$lb
SRV1_NS=$name-srv1
SRV2_NS=$name-srv2
LAN_IP=192.168.50.2
GW_LAN_IP=192.168.50.1
VIP=$VIP
ADV1=${ADV[0]}
ADV2=${ADV[1]}
RATE_MBIT=$rate
EOF
}

cmd_drain() {
    local name=${1:-} k=${2:-}
    [[ -n $name && $k =~ ^[012]$ ]] || die "usage: drain NAME 1|2 (0: both servers again)"
    need_root
    ns_exists "$name-lb" || die "no fleet testbed '$name'"
    local pool="1 2"
    [[ $k == 1 ]] && pool=2
    [[ $k == 2 ]] && pool=1
    { echo "delete table ip fleet_lb"; balancer_rules "$pool"; } | nsx "$name-lb" nft -f -
}

cmd_list() {
    ip netns list | awk '{print $1}' | sed -n 's/-lb$//p' | sort -u
}

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }

main() {
    local sub=${1:-}
    (($#)) && shift
    case $sub in
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        drain) cmd_drain "$@" ;;
        list) cmd_list ;;
        -h|--help|help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
