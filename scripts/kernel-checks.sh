#!/usr/bin/env bash
# Runs inside a VM booted by scripts/test-kernels.sh (the host's root, read-only, as /), on
# another kernel, against this checkout's debug build. The checks are named in CHECKS and
# announced first ("KERNEL-CHECK PLAN name..."); each is a function check_<name> (dashes
# become underscores) run by run_check, which prints exactly one "KERNEL-CHECK PASS name" or
# "KERNEL-CHECK FAIL name: why" for it, whatever the function does. A check passes only by
# returning 0 after its last assertion; `no WHY` records why and returns 1. scripts/test-kernels.sh
# requires a PASS for every planned name. To add a check: one function, one name in CHECKS.
# Transfers are small (the VM is emulated, about ten times slower than the host) and every
# one is checked by SHA-256.
REPO=${1:?usage: kernel-checks.sh REPO KERNEL_ROOT}
KROOT=${2:?usage: kernel-checks.sh REPO KERNEL_ROOT}  # the unpacked kernel package (modules)
cd "$REPO"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
BIN=$REPO/.build/debug
RELAY=$BIN/mptcp-relay
PEER=$REPO/scripts/lib/routed-peer.py
T=$(mktemp -d)
echo "KERNEL-CHECK INFO kernel $(uname -r), net.mptcp.enabled=$(cat /proc/sys/net/mptcp/enabled 2>/dev/null || echo absent)"
CHECKS=(feature-report forward fallback transparent wan-manager wan-health wan-routed tunnel udp-tunnel
        mptcpize-shim mptcpize-scoped mptcpize-supervisor)
echo "KERNEL-CHECK PLAN ${CHECKS[*]}"
why=
no() { why=$*; return 1; }  # inside a check: record why it failed, return 1
blocked=  # set when the testbed cannot be built: every check after that fails with it
run_check() {  # name: runs check_<name>, prints exactly one PASS or FAIL line
    local name=$1 fn=check_${1//-/_}
    why=
    if [[ -n $blocked ]]; then echo "KERNEL-CHECK FAIL $name: not run: $blocked"; return; fi
    if "$fn"; then echo "KERNEL-CHECK PASS $name"
    else echo "KERNEL-CHECK FAIL $name: ${why:-$fn returned non-zero without a reason}" | tr '\n' ' '; echo; fi
}
fetch() {  # ns file url: curl, byte-exact against $WANT, or no
    rm -f "$2"
    ip netns exec "$1" curl -sS --max-time 120 -o "$2" "$3" 2>"$2.err" || { no "curl $3 failed: $(tail -2 "$2.err")"; return 1; }
    local got; got=$(sha256sum "$2" 2>/dev/null | cut -d' ' -f1)
    [[ $got == "$WANT" ]] || no "body of $3 differs (got ${got:-nothing})"
}
wait_port() {  # ns port
    for _ in $(seq 100); do
        [[ -n $(ip netns exec "$1" ss -ltnH "sport = :$2") ]] && return 0
        sleep 0.1
    done
    return 1
}
counter() { ip netns exec "$1" nstat -asz "$2" | awk -v n="$2" '$1 == n {print $2}'; }

# Modules the testbed and the rules need (the kernel's own module requests may not reach
# this root's modprobe).
for m in veth sch_tbf sch_htb sch_ingress nf_tables nft_tproxy nf_tproxy_ipv4 nf_tproxy_ipv6 nft_socket \
         nft_nat nft_redir nft_chain_nat nft_numgen nft_ct nft_reject_inet nft_fib_inet nft_masq nf_conntrack_netlink; do
    modprobe -d "$KROOT" "$m" 2>>"$T/modprobe.err" || echo "KERNEL-CHECK INFO modprobe $m: $(tail -1 "$T/modprobe.err")"
done

stop_relay() {  # pattern: SIGTERM, then wait until it is gone (it removes what it set up)
    pkill -f "$1" 2>/dev/null
    for _ in $(seq 100); do pgrep -f "$1" >/dev/null || return 0; sleep 0.2; done
    pkill -9 -f "$1" 2>/dev/null
}

# What this kernel offers, as the relay sees it.
check_feature_report() {
    "$RELAY" check --kernel >"$T/features.txt" 2>&1 || no "$(tail -3 "$T/features.txt")"
    local rc=$?
    sed 's/^/KERNEL-CHECK INFO   /' "$T/features.txt"
    return $rc
}

# The testbed's topology, built with a few batched commands (every process start costs a
# lot under emulation): lan --lan0-- gw ==wan1,wan2 (50 Mbit/s each)== srv.
LAN_NS=kc-lan GW_NS=kc-gw SRV_NS=kc-srv GW_LAN_IP=192.168.50.1 SRV_IP=10.1.0.2
topology() {
    for ns in $LAN_NS $GW_NS $SRV_NS; do ip netns add "$ns" || return 1; done
    ip -batch - <<IP || return 1
link add lan0 netns $GW_NS type veth peer name eth0 netns $LAN_NS
link add wan1 netns $GW_NS type veth peer name wan1 netns $SRV_NS
link add wan2 netns $GW_NS type veth peer name wan2 netns $SRV_NS
IP
    ip -n $LAN_NS -batch - <<IP || return 1
link set lo up
addr add 192.168.50.2/24 dev eth0
link set eth0 up
route add default via $GW_LAN_IP
IP
    ip -n $GW_NS -batch - <<IP || return 1
link set lo up
addr add $GW_LAN_IP/24 dev lan0
addr add 10.1.0.1/24 dev wan1
addr add 10.2.0.1/24 dev wan2
link set lan0 up
link set wan1 up
link set wan2 up
route add default via 10.1.0.2 dev wan1
rule add from 10.2.0.1 table 102
route add default via 10.2.0.2 dev wan2 table 102
mptcp limits set subflows 8 add_addr_accepted 8
mptcp endpoint add 10.2.0.1 dev wan2 subflow
IP
    ip -n $SRV_NS -batch - <<IP || return 1
link set lo up
addr add $SRV_IP/24 dev wan1
addr add 10.2.0.2/24 dev wan2
link set wan1 up
link set wan2 up
route add 192.168.50.0/24 via 10.1.0.1 dev wan1
mptcp limits set subflows 8 add_addr_accepted 8
IP
    ip netns exec $GW_NS sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 || return 1
    for ns in $GW_NS $SRV_NS; do
        tc -n "$ns" -batch - <<TC || return 1
qdisc replace dev wan1 root tbf rate 50mbit burst 32k latency 25ms
qdisc replace dev wan2 root tbf rate 50mbit burst 32k latency 25ms
TC
    done
}
teardown() { for ns in $LAN_NS $GW_NS $SRV_NS; do ip netns pids "$ns" 2>/dev/null | xargs -r kill -9; ip netns del "$ns" 2>/dev/null; done; }
trap teardown EXIT
# The testbed and its servers are not a check of their own: when they cannot be set up,
# every check that needs them fails with the reason.
testbed() {
    local start; start=$(date +%s)
    topology 2>"$T/topology.err" || { blocked="topology: $(tail -3 "$T/topology.err" | tr '\n' ' ')"; return; }
    echo "KERNEL-CHECK INFO topology up in $(( $(date +%s) - start )) s"
    mkdir -p "$T/www"
    head -c 4000000 /dev/urandom >"$T/www/body.bin"
    WANT=$(sha256sum "$T/www/body.bin" | cut -d' ' -f1)
    ip netns exec "$SRV_NS" mptcpize run python3 -m http.server 8080 --bind "$SRV_IP" --directory "$T/www" >"$T/http-mptcp.log" 2>&1 &
    ip netns exec "$SRV_NS" python3 -m http.server 8090 --bind "$SRV_IP" --directory "$T/www" >"$T/http-tcp.log" 2>&1 &
    wait_port "$SRV_NS" 8080 && wait_port "$SRV_NS" 8090 ||
        blocked="the test servers did not start: $(tail -2 "$T/http-mptcp.log" "$T/http-tcp.log" | tr '\n' ' ')"
}

# 1. Forward mode, MPTCP upstream, and fallback to a plain TCP server.
check_forward() {
    ip netns exec "$GW_NS" "$RELAY" run --listen "$GW_LAN_IP:7001" --upstream "$SRV_IP:8080" >"$T/fwd.log" 2>&1 &
    wait_port "$GW_NS" 7001 || { no "relay did not start: $(tail -3 "$T/fwd.log")"; return; }
    fetch "$LAN_NS" "$T/fwd.bin" "http://$GW_LAN_IP:7001/body.bin" || return
    sleep 0.3
    grep -q "mptcp=yes" "$T/fwd.log" || no "no mptcp=yes: $(tail -2 "$T/fwd.log")"
}
check_fallback() {
    ip netns exec "$GW_NS" "$RELAY" run --listen "$GW_LAN_IP:7002" --upstream "$SRV_IP:8090" >"$T/fallback.log" 2>&1 &
    wait_port "$GW_NS" 7002 || { no "relay did not start: $(tail -3 "$T/fallback.log")"; return; }
    fetch "$LAN_NS" "$T/fb.bin" "http://$GW_LAN_IP:7002/body.bin" || return
    sleep 0.3
    grep -q "mptcp=no (fallback" "$T/fallback.log" || no "no fallback line: $(tail -2 "$T/fallback.log")"
}

# 2. The transparent gateway (TPROXY), rules and routes from `mptcp-relay nft`, over both WANs.
check_transparent() {
    cat >"$T/gw.toml" <<TOML
[[listener]]
listen = "[::]:7000"
mode = "transparent"

[interception]
lan_interfaces = ["lan0"]
# The "internet" here is 10.x: only the LAN's own subnet stays direct.
exclude = ["192.168.50.0/24", "127.0.0.0/8"]
TOML
    ip netns exec "$GW_NS" "$RELAY" nft --config "$T/gw.toml" >"$T/rules.nft" 2>"$T/nft.err" &&
        ip netns exec "$GW_NS" nft -f "$T/rules.nft" 2>>"$T/nft.err" &&
        ip netns exec "$GW_NS" "$RELAY" nft --config "$T/gw.toml" --routes >"$T/routes.sh" 2>>"$T/nft.err" &&
        ip netns exec "$GW_NS" bash "$T/routes.sh" 2>>"$T/nft.err" || { no "rules did not load: $(cat "$T/nft.err")"; return; }
    ip netns exec "$GW_NS" "$RELAY" run --config "$T/gw.toml" >"$T/tproxy.log" 2>&1 &
    local rc=0
    if wait_port "$GW_NS" 7000; then
        local joins; joins=$(counter "$SRV_NS" MPTcpExtMPJoinSynRx)
        if fetch "$LAN_NS" "$T/tp.bin" "http://$SRV_IP:8080/body.bin"; then
            sleep 0.3
            if ! grep -q "upstream=$SRV_IP:8080 mptcp=yes" "$T/tproxy.log"; then
                no "no MPTCP upstream: $(grep -v 'descriptor limit' "$T/tproxy.log" | tail -3 | tr '\n' ' ')"; rc=1
            elif (( $(counter "$SRV_NS" MPTcpExtMPJoinSynRx) <= joins )); then
                no "no second subflow joined over WAN 2"; rc=1
            fi
        else rc=1; fi
    else
        no "relay did not start: $(tail -3 "$T/tproxy.log")"; rc=1
    fi
    stop_relay "run --config $T/gw.toml"
    return $rc
}

# 2b. The WAN manager: the same gateway with the uplinks taken from [[wan]] alone (the
# hand-made endpoint, rule and table removed first): the daemon puts them back over netlink.
# Its relay stays up for wan-health and wan-routed; wan-routed stops it.
check_wan_manager() {
    ip -n "$GW_NS" mptcp endpoint flush
    ip -n "$GW_NS" rule del from 10.2.0.1 table 102
    ip -n "$GW_NS" route flush table 102
    cat "$T/gw.toml" - >"$T/wan.toml" <<TOML

[[wan]]
interface = "wan1"

[[wan]]
interface = "wan2"
gateway = "10.2.0.2"         # the main table has no default route through wan2 here
TOML
    sleep 1
    ip netns exec "$GW_NS" "$RELAY" run --config "$T/wan.toml" >"$T/wan.log" 2>&1 &
    wait_port "$GW_NS" 7000 || { no "relay did not start: $(grep -v 'descriptor limit' "$T/wan.log" | tail -3 | tr '\n' ' ')"; return; }
    sleep 1
    local endpoints joins
    endpoints=$(ip -n "$GW_NS" mptcp endpoint show)
    joins=$(counter "$SRV_NS" MPTcpExtMPJoinSynRx)
    fetch "$LAN_NS" "$T/wan.bin" "http://$SRV_IP:8080/body.bin" || return
    grep -q "10.2.0.1" <<<"$endpoints" || { no "no endpoint for wan2: $endpoints"; return; }
    (( $(counter "$SRV_NS" MPTcpExtMPJoinSynRx) > joins )) || no "no subflow joined over wan2 ($endpoints)"
}

# 2c. Health probes: WAN 1's far side drops everything while its link stays up. The
# default targets never answer here, so the gateway ping judges; it fails, WAN 1 goes
# out of service, and a new connection to an address beyond both WANs starts on WAN 2.
# The blackhole and the relay stay for wan-routed, which removes them.
check_wan_health() {
    pgrep -f "run --config $T/wan.toml" >/dev/null ||
        { no "the WAN manager's relay is not running: $(grep -v 'descriptor limit' "$T/wan.log" 2>/dev/null | tail -3 | tr '\n' ' ')"; return; }
    ip -n "$SRV_NS" addr add 10.200.0.1/32 dev lo
    ip netns exec "$SRV_NS" mptcpize run python3 -m http.server 8081 --bind 10.200.0.1 --directory "$T/www" >"$T/http-far.log" 2>&1 &
    # wan-routed: routed LAN UDP, NATed per WAN, to an echo beyond both WANs; one flow runs
    # across the outage.
    ip netns exec "$GW_NS" nft -f - <<NFT
table inet kc_nat { chain post { type nat hook postrouting priority srcnat; oifname "wan*" ip saddr 192.168.50.0/24 masquerade; }; }
NFT
    ip netns exec "$SRV_NS" python3 "$PEER" echo 7 10.200.0.1 >"$T/echo.log" 2>&1 &
    for _ in $(seq 100); do grep -q listening "$T/echo.log" && break; sleep 0.2; done
    ip netns exec "$LAN_NS" python3 "$PEER" flow 10.200.0.1 7 120 "$T/flow.stop" >"$T/flow.log" 2>&1 &
    sleep 2
    ip netns exec "$SRV_NS" nft -f - <<NFT
table inet kc_blackhole {
    chain rx { type filter hook prerouting priority -300; iifname "wan1" drop; }
    chain tx { type filter hook postrouting priority 300; oifname "wan1" drop; }
}
NFT
    for _ in $(seq 150); do grep -q "wan: wan1 out of service" "$T/wan.log" && break; sleep 0.2; done
    grep -q "wan: wan1 out of service" "$T/wan.log" ||
        { no "wan1 not taken out of service in 30 s: $(grep 'wan:' "$T/wan.log" | tail -3 | tr '\n' ' ')"; return; }
    wait_port "$SRV_NS" 8081 || { no "the far server did not start: $(tail -2 "$T/http-far.log")"; return; }
    fetch "$LAN_NS" "$T/far.bin" "http://10.200.0.1:8081/body.bin" || return
    grep -q "new IPv4 connections start on wan2 (bound to 10.2.0.1)" "$T/wan.log" ||
        no "no steering line: $(grep 'wan:' "$T/wan.log" | tail -3 | tr '\n' ' ')"
}

# 2d. Routed traffic follows too ([routing] follow_service): a new LAN UDP flow and the
# one that ran across the outage (its conntrack entry, NATed to WAN 1, deleted) both get
# answers through WAN 2. Then the WAN checks' relay and rules go.
check_wan_routed() {
    local rc=1
    if ! pgrep -f "run --config $T/wan.toml" >/dev/null; then
        no "the WAN manager's relay is not running: $(grep -v 'descriptor limit' "$T/wan.log" 2>/dev/null | tail -3 | tr '\n' ' ')"
    elif ! ip netns exec "$LAN_NS" python3 "$PEER" once 10.200.0.1 7 3 >"$T/once.log" 2>&1; then
        no "a new routed UDP exchange got no answer: $(cat "$T/once.log") $(grep 'wan:' "$T/wan.log" | tail -3 | tr '\n' ' ')"
    else
        sleep 1; touch "$T/flow.stop"
        for _ in $(seq 50); do grep -q '"sent"' "$T/flow.log" && break; sleep 0.2; done
        if ! ip -n "$GW_NS" route show table 1000 | grep -q "default via 10.2.0.2"; then no "no detour in table 1000: $(ip -n "$GW_NS" route show table 1000)"
        elif ! python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().splitlines()[-1]); sys.exit(0 if d["last_answer"] > d["duration"] - 1.5 else 1)' "$T/flow.log" 2>/dev/null; then
            no "the UDP flow across the outage did not resume: $(tail -1 "$T/flow.log")"
        else rc=0; fi
    fi
    touch "$T/flow.stop"
    ip netns exec "$SRV_NS" nft delete table inet kc_blackhole 2>/dev/null
    ip netns exec "$GW_NS" nft delete table inet kc_nat 2>/dev/null
    stop_relay "run --config $T/wan.toml"
    ip netns exec "$GW_NS" nft delete table inet mptcp_relay 2>/dev/null
    return $rc
}

# 3. The tunnel: gateway (redirect, --via) -> our server -> a plain TCP server.
check_tunnel() {
    umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/tunnel.key"; umask 022
    ip netns exec "$SRV_NS" "$RELAY" run --listen "$SRV_IP:4000" --server --key-file "$T/tunnel.key" --allow "$SRV_IP/32" >"$T/tserver.log" 2>&1 &
    ip netns exec "$GW_NS" "$RELAY" run --listen 0.0.0.0:7005 --redirect --via "$SRV_IP:4000" --key-file "$T/tunnel.key" >"$T/tgw.log" 2>&1 &
    ip netns exec "$GW_NS" nft -f - <<NFT || { no "the redirect rule did not load"; return; }
table ip kc_redirect {
    chain pre { type nat hook prerouting priority dstnat; iifname "lan0" tcp dport 8090 redirect to :7005; }
}
NFT
    wait_port "$SRV_NS" 4000 && wait_port "$GW_NS" 7005 ||
        { no "tunnel ends did not start: $(tail -2 "$T/tserver.log") $(tail -2 "$T/tgw.log")"; return; }
    fetch "$LAN_NS" "$T/tun.bin" "http://$SRV_IP:8090/body.bin" || return
    sleep 0.3
    grep -q "via=$SRV_IP:4000 mptcp=yes" "$T/tgw.log" || no "gateway did not tunnel over MPTCP: $(tail -2 "$T/tgw.log")"
}

# 3b. UDP through the tunnel (issue 23): a transparent gateway with udp = true, through the
# tunnel server of check_tunnel, to a UDP echo on the server host. On kernels whose MPTCP
# refuses TCP_NOTSENT_LOWAT (before 6.9) the relay falls back to a small send buffer.
check_udp_tunnel() {
    cat >"$T/udpgw.toml" <<TOML
log_level = "debug"
[[listener]]
listen = "[::]:7006"
mode = "transparent"
via = "$SRV_IP:4000"
key_file = "$T/tunnel.key"
udp = true
[interception]
lan_interfaces = ["lan0"]
exclude = ["192.168.50.0/24", "127.0.0.0/8"]
TOML
    ip netns exec "$SRV_NS" python3 "$REPO/scripts/lib/udp-probe.py" sink --host "$SRV_IP" --port 9999 --echo >"$T/udpecho.log" 2>&1 &
    ip netns exec "$GW_NS" "$RELAY" nft --config "$T/udpgw.toml" >"$T/udprules.nft" 2>"$T/udpnft.err" &&
        ip netns exec "$GW_NS" nft -f "$T/udprules.nft" 2>>"$T/udpnft.err" &&
        ip netns exec "$GW_NS" "$RELAY" nft --config "$T/udpgw.toml" --routes >"$T/udproutes.sh" 2>>"$T/udpnft.err" &&
        ip netns exec "$GW_NS" bash "$T/udproutes.sh" 2>>"$T/udpnft.err" || { no "rules did not load: $(cat "$T/udpnft.err")"; return; }
    ip netns exec "$GW_NS" "$RELAY" run --config "$T/udpgw.toml" >"$T/udpgw.log" 2>&1 &
    local rc=0 answers
    if wait_port "$GW_NS" 7006; then
        answers=$(ip netns exec "$LAN_NS" python3 "$REPO/scripts/lib/udp-probe.py" pingpong --host "$SRV_IP" --port 9999 --count 20 --interval 20 2>&1)
        sleep 0.3
        if [[ $answers != *'"lost": 0,'* ]]; then
            no "echoes lost through the UDP tunnel: $answers $(tail -2 "$T/udpgw.log" | tr '\n' ' ')"; rc=1
        elif ! grep -q "destination=$SRV_IP:9999 tunnel=connected mptcp=yes" "$T/udpgw.log"; then
            no "the UDP flow did not go through the tunnel over MPTCP: $(grep udp "$T/udpgw.log" | tail -3 | tr '\n' ' ')"; rc=1
        fi
        grep -q "refuses TCP_NOTSENT_LOWAT" "$T/udpgw.log" && echo "KERNEL-CHECK INFO udp-tunnel: MPTCP refuses TCP_NOTSENT_LOWAT here; the send-buffer fallback carried the flow"
    else
        no "relay did not start: $(tail -3 "$T/udpgw.log")"; rc=1
    fi
    stop_relay "run --config $T/udpgw.toml"
    pkill -f "udp-probe.py sink --host $SRV_IP" 2>/dev/null
    # Leave no interception behind for the checks after this one.
    ip netns exec "$GW_NS" nft delete table inet mptcp_relay 2>/dev/null
    return $rc
}

# 4. mptcpize: an unmodified curl talks MPTCP to the server, through the preload shim
# (default and scoped) and through the seccomp supervisor (user notification + ADDFD).
mptcpize_check() {  # args...
    [[ -x $BIN/mptcpize-cli ]] || { no "$BIN/mptcpize-cli is missing (swift build builds it)"; return; }
    local before; before=$(counter "$SRV_NS" MPTcpExtMPCapableSYNRX)
    rm -f "$T/mz.bin"
    ip netns exec "$LAN_NS" "$BIN/mptcpize-cli" run "$@" curl -sS --max-time 120 -o "$T/mz.bin" "http://$SRV_IP:8080/body.bin" 2>"$T/mz.err" ||
        { no "curl failed: $(tail -2 "$T/mz.err" | tr '\n' ' ')"; return; }
    local got; got=$(sha256sum "$T/mz.bin" | cut -d' ' -f1)
    [[ $got == "$WANT" ]] || { no "body differs (got $got)"; return; }
    (( $(counter "$SRV_NS" MPTcpExtMPCapableSYNRX) > before )) || no "the server saw no MP_CAPABLE SYN"
}
check_mptcpize_shim() { mptcpize_check; }
check_mptcpize_scoped() { mptcpize_check --scope connect; }
check_mptcpize_supervisor() { mptcpize_check --seccomp; }

testbed_up=
for name in "${CHECKS[@]}"; do
    # feature-report needs no testbed; every other check does.
    [[ $name != feature-report && -z $testbed_up ]] && { testbed; testbed_up=1; }
    run_check "$name"
done
rm -rf "$T"
