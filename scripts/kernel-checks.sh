#!/usr/bin/env bash
# Runs inside a VM booted by scripts/test-kernels.sh (the host's root, read-only, as /), on
# another kernel, against this checkout's debug build: each check prints
# "KERNEL-CHECK PASS name" or "KERNEL-CHECK FAIL name: why". Transfers are small (the VM is
# emulated, about ten times slower than the host) and every one is checked by SHA-256.
REPO=${1:?usage: kernel-checks.sh REPO}
cd "$REPO"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
BIN=$REPO/.build/debug
RELAY=$BIN/mptcp-relay
T=$(mktemp -d)
echo "KERNEL-CHECK INFO kernel $(uname -r), net.mptcp.enabled=$(cat /proc/sys/net/mptcp/enabled 2>/dev/null || echo absent)"
pass() { echo "KERNEL-CHECK PASS $1"; }
fail() { echo "KERNEL-CHECK FAIL $1: $2"; }
check_hash() {  # name file want
    local got; got=$(sha256sum "$2" 2>/dev/null | cut -d' ' -f1)
    if [[ $got == "$3" ]]; then return 0; fi
    fail "$1" "body differs (got ${got:-nothing})"; return 1
}
wait_port() {  # ns port
    for _ in $(seq 100); do
        [[ -n $(ip netns exec "$1" ss -ltnH "sport = :$2") ]] && return 0
        sleep 0.1
    done
    return 1
}
counter() { ip netns exec "$1" nstat -asz "$2" | awk -v n="$2" '$1 == n {print $2}'; }

# What this kernel offers, as the relay sees it.
"$RELAY" check --kernel >"$T/features.txt" 2>&1 && pass "feature-report" || fail "feature-report" "$(tail -3 "$T/features.txt")"
sed 's/^/KERNEL-CHECK INFO   /' "$T/features.txt"

eval "$(scripts/testbed.sh up kc --wans 2 --rate 50)"
trap 'scripts/testbed.sh down kc >/dev/null 2>&1' EXIT
mkdir -p "$T/www"
head -c 4000000 /dev/urandom >"$T/www/body.bin"
WANT=$(sha256sum "$T/www/body.bin" | cut -d' ' -f1)
ip netns exec "$SRV_NS" mptcpize run python3 -m http.server 8080 --bind "$SRV_IP" --directory "$T/www" >"$T/http-mptcp.log" 2>&1 &
ip netns exec "$SRV_NS" python3 -m http.server 8090 --bind "$SRV_IP" --directory "$T/www" >"$T/http-tcp.log" 2>&1 &
wait_port "$SRV_NS" 8080 && wait_port "$SRV_NS" 8090 || fail servers "the test servers did not start"

# 1. Forward mode, MPTCP upstream, and fallback to a plain TCP server.
ip netns exec "$GW_NS" "$RELAY" run --listen "$GW_LAN_IP:7001" --upstream "$SRV_IP:8080" >"$T/fwd.log" 2>&1 &
ip netns exec "$GW_NS" "$RELAY" run --listen "$GW_LAN_IP:7002" --upstream "$SRV_IP:8090" >"$T/fallback.log" 2>&1 &
if wait_port "$GW_NS" 7001 && wait_port "$GW_NS" 7002; then
    ip netns exec "$LAN_NS" curl -sS -o "$T/fwd.bin" "http://$GW_LAN_IP:7001/body.bin" && check_hash forward "$T/fwd.bin" "$WANT" &&
        { sleep 0.3; grep -q "mptcp=yes" "$T/fwd.log" && pass forward || fail forward "no mptcp=yes: $(tail -2 "$T/fwd.log")"; }
    ip netns exec "$LAN_NS" curl -sS -o "$T/fb.bin" "http://$GW_LAN_IP:7002/body.bin" && check_hash fallback "$T/fb.bin" "$WANT" &&
        { sleep 0.3; grep -q "mptcp=no (fallback" "$T/fallback.log" && pass fallback || fail fallback "no fallback line: $(tail -2 "$T/fallback.log")"; }
else
    fail forward "relay did not start: $(tail -3 "$T/fwd.log")"
fi

# 2. The transparent gateway (TPROXY), rules and routes from `mptcp-relay nft`, over both WANs.
cat >"$T/gw.toml" <<TOML
[[listener]]
listen = "[::]:7000"
mode = "transparent"

[interception]
lan_interfaces = ["lan0"]
TOML
if ip netns exec "$GW_NS" "$RELAY" nft --config "$T/gw.toml" >"$T/rules.nft" &&
    ip netns exec "$GW_NS" nft -f "$T/rules.nft" 2>"$T/nft.err" &&
    ip netns exec "$GW_NS" "$RELAY" nft --config "$T/gw.toml" --routes >"$T/routes.sh" &&
    ip netns exec "$GW_NS" bash "$T/routes.sh" 2>>"$T/nft.err"; then
    ip netns exec "$GW_NS" "$RELAY" run --config "$T/gw.toml" >"$T/tproxy.log" 2>&1 &
    if wait_port "$GW_NS" 7000; then
        joins=$(counter "$SRV_NS" MPTcpExtMPJoinSynRx)
        ip netns exec "$LAN_NS" curl -sS -o "$T/tp.bin" "http://$SRV_IP:8080/body.bin" && check_hash transparent "$T/tp.bin" "$WANT" && {
            sleep 0.3
            if ! grep -q "upstream=$SRV_IP:8080 mptcp=yes" "$T/tproxy.log"; then fail transparent "no MPTCP upstream: $(tail -2 "$T/tproxy.log")"
            elif (( $(counter "$SRV_NS" MPTcpExtMPJoinSynRx) <= joins )); then fail transparent "no second subflow joined over WAN 2"
            else pass transparent; fi
        }
    else
        fail transparent "relay did not start: $(tail -3 "$T/tproxy.log")"
    fi
else
    fail transparent "rules did not load: $(cat "$T/nft.err")"
fi
ip netns exec "$GW_NS" nft delete table inet mptcp_relay 2>/dev/null
pkill -f "run --config $T/gw.toml" 2>/dev/null

# 3. The tunnel: gateway (redirect, --via) -> our server -> a plain TCP server.
umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/tunnel.key"; umask 022
ip netns exec "$SRV_NS" "$RELAY" run --listen "$SRV_IP:4000" --server --key-file "$T/tunnel.key" --allow "$SRV_IP/32" >"$T/tserver.log" 2>&1 &
ip netns exec "$GW_NS" "$RELAY" run --listen 0.0.0.0:7005 --redirect --via "$SRV_IP:4000" --key-file "$T/tunnel.key" >"$T/tgw.log" 2>&1 &
ip netns exec "$GW_NS" nft -f - <<NFT
table ip kc_redirect {
    chain pre { type nat hook prerouting priority dstnat; iifname "lan0" tcp dport 8090 redirect to :7005; }
}
NFT
if wait_port "$SRV_NS" 4000 && wait_port "$GW_NS" 7005; then
    ip netns exec "$LAN_NS" curl -sS -o "$T/tun.bin" "http://$SRV_IP:8090/body.bin" && check_hash tunnel "$T/tun.bin" "$WANT" && {
        sleep 0.3
        grep -q "via=$SRV_IP:4000 mptcp=yes" "$T/tgw.log" && pass tunnel || fail tunnel "gateway did not tunnel over MPTCP: $(tail -2 "$T/tgw.log")"
    }
else
    fail tunnel "tunnel ends did not start: $(tail -2 "$T/tserver.log") $(tail -2 "$T/tgw.log")"
fi

# 4. mptcpize: an unmodified curl, through our shim, talks MPTCP to the server.
if [[ -x $BIN/mptcpize-cli ]]; then
    before=$(counter "$SRV_NS" MPTcpExtMPCapableSYNRX)
    ip netns exec "$LAN_NS" ip route add 10.0.0.0/8 via "$GW_LAN_IP" 2>/dev/null
    ip netns exec "$GW_NS" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$LAN_NS" "$BIN/mptcpize-cli" run curl -sS -o "$T/mz.bin" "http://$SRV_IP:8080/body.bin" 2>"$T/mz.err" &&
        check_hash mptcpize "$T/mz.bin" "$WANT" && {
            if (( $(counter "$SRV_NS" MPTcpExtMPCapableSYNRX) > before )); then pass mptcpize
            else fail mptcpize "the server saw no MP_CAPABLE SYN"; fi
        }
    [[ -s $T/mz.bin ]] || fail mptcpize "curl failed: $(tail -2 "$T/mz.err")"
fi
rm -rf "$T"
