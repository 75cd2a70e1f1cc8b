#!/usr/bin/env bash
# The container images, end to end (issue 27). Not part of scripts/test.sh: building the
# images costs a release build and a debootstrap (about 10 minutes on 2 cores).
#   scripts/test-containers.sh              # builds the images (scripts/build-images.sh) first
#   SKIP_BUILD=1 scripts/test-containers.sh # with the images already built
# 1. The server image under Podman (runc) in a testbed's server namespace, with the shipped
#    seccomp profile: a gateway (this checkout's relay) tunnels a download through it,
#    byte-exact, over MPTCP.
# 2. The same image with Podman's default seccomp profile: exits 1, and says a seccomp filter
#    refuses io_uring.
# 3. The gateway image in the testbed's gateway namespace: loads its rules, aggregates a LAN
#    download through the server container, removes its rules when stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[[ $(id -u) -eq 0 ]] || { echo "test-containers.sh: run as root" >&2; exit 1; }
scripts/setup-deps.sh --containers
[[ ${SKIP_BUILD:-0} == 1 ]] || scripts/build-images.sh
swift build >/dev/null
bin=$root/.build/debug/mptcp-relay
podman_=(podman --runtime runc)
# This sandbox cannot raise limits; podman's defaults try to.
limits=(--ulimit nofile=1024:4096 --ulimit nproc=1024:4096)

name=ct$$
T=$(mktemp -d)
passed=0 failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
cleanup() {
    "${podman_[@]}" rm -f -t 2 "$name-srv" "$name-gw" "$name-default" >/dev/null 2>&1 || true
    scripts/testbed.sh down "$name" >/dev/null 2>&1 || true
    rm -rf "$T"
}
trap cleanup EXIT
eval "$(scripts/testbed.sh up "$name" --bare)"
wait_port() { for _ in $(seq 100); do [[ -n $(ip netns exec "$1" ss -ltnH "sport = :$2") ]] && return 0; sleep 0.1; done; return 1; }

# The server side, written by init server with the tunnel's key; the far web server is plain TCP.
mkdir -p "$T/srv" "$T/gw" "$T/www"
ip netns exec "$SRV_NS" "$bin" init server --output "$T/srv/config.toml" --allow "$SRV_FAR_IP/32" >/dev/null
install -m 600 "$T/srv/tunnel.key" "$T/gw/tunnel.key"
head -c 20000000 /dev/urandom >"$T/www/body.bin"
want=$(sha256sum "$T/www/body.bin" | cut -d' ' -f1)
ip netns exec "$SRV_NS" python3 -m http.server 8090 --bind "$SRV_FAR_IP" --directory "$T/www" >"$T/http.log" 2>&1 &

# 1. The server image with the shipped profile.
"${podman_[@]}" run -d --name "$name-srv" --network "ns:/run/netns/$SRV_NS" --cap-add NET_ADMIN,NET_RAW \
    --security-opt seccomp="$root/packaging/container/seccomp-io_uring.json" "${limits[@]}" \
    -v "$T/srv:/etc/mptcp-relay:ro" localhost/mptcp-relay-server:latest >/dev/null
if ! wait_port "$SRV_NS" 4443 || ! wait_port "$SRV_NS" 8090; then
    fail server-image "the server container does not listen: $("${podman_[@]}" logs "$name-srv" 2>&1 | tail -3)"
else
    ip netns exec "$GW_NS" "$bin" init gateway --yes --server "$SRV_FAR_IP:4443" --output "$T/gw/config.toml" >/dev/null
    ip netns exec "$GW_NS" sh -c "'$bin' nft --config '$T/gw/config.toml' | nft -f - && '$bin' nft --config '$T/gw/config.toml' --routes | sh"
    ip netns exec "$GW_NS" "$bin" run --config "$T/gw/config.toml" >"$T/gw.log" 2>&1 &
    gw=$!
    if wait_port "$GW_NS" 7000 && ip netns exec "$LAN_NS" curl -sS --max-time 60 -o "$T/got.bin" "http://$SRV_FAR_IP:8090/body.bin" &&
        [[ $(sha256sum "$T/got.bin" | cut -d' ' -f1) == "$want" ]]; then
        sleep 0.3
        if grep -q "via=$SRV_FAR_IP:4443 mptcp=yes" "$T/gw.log"; then pass server-image
        else fail server-image "the gateway did not tunnel over MPTCP: $(tail -2 "$T/gw.log")"; fi
    else
        fail server-image "download through the containerised server failed: $(tail -2 "$T/gw.log") / $("${podman_[@]}" logs "$name-srv" 2>&1 | tail -2)"
    fi
    kill "$gw" 2>/dev/null; wait "$gw" 2>/dev/null || true
    ip netns exec "$GW_NS" nft delete table inet mptcp_relay 2>/dev/null || true
fi

# 2. The same image with the default profile: a clear refusal, exit 1.
set +e
out=$("${podman_[@]}" run --name "$name-default" --network "ns:/run/netns/$SRV_NS" --cap-add NET_ADMIN "${limits[@]}" \
    -v "$T/srv:/etc/mptcp-relay:ro" localhost/mptcp-relay-server:latest run --listen 127.0.0.1:4999 --upstream 127.0.0.1:1 2>&1)
rc=$?
set -e
if [[ $rc == 1 ]] && grep -q "a seccomp filter on this process refuses io_uring_setup" <<<"$out"; then pass default-profile-refused
else fail default-profile-refused "exit $rc: $(tail -3 <<<"$out")"; fi
kernel=$("${podman_[@]}" run --rm --network none "${limits[@]}" localhost/mptcp-relay-server:latest check --kernel 2>&1 || true)
if grep -q "seccomp filter" <<<"$kernel"; then pass check-kernel-says-seccomp
else fail check-kernel-says-seccomp "$(head -3 <<<"$kernel")"; fi

# 3. The gateway image in the gateway namespace, through the server container.
"${podman_[@]}" run -d --name "$name-gw" --network "ns:/run/netns/$GW_NS" --cap-add NET_ADMIN,NET_RAW,NET_BIND_SERVICE \
    --security-opt seccomp="$root/packaging/container/seccomp-io_uring.json" "${limits[@]}" \
    -v "$T/gw:/etc/mptcp-relay:ro" localhost/mptcp-relay-gateway:latest >/dev/null
rx1=$(ip netns exec "$GW_NS" cat /sys/class/net/wan1/statistics/rx_bytes) rx2=$(ip netns exec "$GW_NS" cat /sys/class/net/wan2/statistics/rx_bytes)
rm -f "$T/got.bin"
if wait_port "$GW_NS" 7000 && ip netns exec "$LAN_NS" curl -sS --max-time 60 -o "$T/got.bin" "http://$SRV_FAR_IP:8090/body.bin" &&
    [[ $(sha256sum "$T/got.bin" | cut -d' ' -f1) == "$want" ]]; then
    d1=$(( $(ip netns exec "$GW_NS" cat /sys/class/net/wan1/statistics/rx_bytes) - rx1 ))
    d2=$(( $(ip netns exec "$GW_NS" cat /sys/class/net/wan2/statistics/rx_bytes) - rx2 ))
    echo "INFO gateway image: WAN 1 carried $((d1 / 1000000)) MB, WAN 2 $((d2 / 1000000)) MB of 20 MB"
    if ((d1 > 4000000 && d2 > 4000000)); then pass gateway-image; else fail gateway-image "one WAN carried it all ($d1 / $d2 bytes)"; fi
else
    fail gateway-image "download through the gateway container failed: $("${podman_[@]}" logs "$name-gw" 2>&1 | tail -3)"
fi
"${podman_[@]}" stop -t 45 "$name-gw" >/dev/null
if ip netns exec "$GW_NS" nft list tables | grep -q "mptcp_relay"; then fail gateway-image-cleanup "rules left: $(ip netns exec "$GW_NS" nft list tables | tr '\n' ' ')"
else pass gateway-image-cleanup; fi

echo "$passed passed, $failed failed"
((failed == 0))
