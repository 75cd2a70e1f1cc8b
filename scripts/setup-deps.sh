#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmarks need (Debian/Ubuntu), only if missing.
# Idempotent: a second run installs nothing and does not touch the network.
set -euo pipefail

PACKAGES=(
    liburing-dev   # the relay's io_uring
    libmnl-dev     # netlink (mptcp_pm, rtnetlink) for the WAN manager
    iproute2       # ip netns / ip mptcp / tc (testbed)
    nftables       # packet loss and blackholes in the testbed
    iperf3 curl wget python3 socat   # peers in tests and demo
    tmux           # drives `mptcp-relay init` on a terminal in its test
    dnsmasq-base   # the gateway's resolver and a DNS server beyond the WANs (routed failover tests)
    nginx-light    # mptcpize test: reverse proxy under --scope connect
    gcc libc6-dev file   # mptcpize test: a statically linked client (gcc -static)
    procps util-linux            # sysctl, prlimit
    mptcpize       # classic LD_PRELOAD mptcpize: makes stock servers speak MPTCP
    haproxy sockperf wrk        # benchmark comparisons
    tshark linux-perf psmisc    # inspection and profiling
    chromium fonts-dejavu-core  # headless browser test of the admin dashboard
    dpkg-dev fakeroot lintian man-db binutils adduser git   # scripts/package-deb.sh, test-deb.sh
    bind9-dnsutils wireguard-tools wireguard-go   # UDP tests: dig, and a WireGuard tunnel through the relay
    python3-venv openssl   # the QUIC peer (aioquic from PyPI, in .build/test-venv) and its test certificate
    libcurl4-openssl-dev   # -lcurl: static Foundation (FoundationNetworking) in the package's -static-stdlib link
)

# Container images (scripts/build-images.sh, scripts/test-containers.sh) only on request:
# podman pulls in a lot. runc: crun fails on this host's cgroups (hybrid mode).
if [[ ${1:-} == --containers ]]; then
    PACKAGES+=(podman runc debootstrap golang-github-containers-common)
fi

missing=()
for p in "${PACKAGES[@]}"; do
    # "install ok installed" only; half-removed packages count as missing.
    if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "setup-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
        SUDO=(sudo)
    fi
    echo "setup-deps: installing ${missing[*]}" >&2
    "${SUDO[@]}" apt-get update -qq
    # noninteractive: tshark and iperf3 would otherwise ask debconf questions.
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# aioquic (a real QUIC stack) for the UDP tests and Benchmarks/udp.sh, from PyPI into a venv
# under .build (never into the system's Python). Pinned: the figures depend on it.
VENV=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.build/test-venv
if ! "$VENV/bin/python3" -c 'import aioquic' 2>/dev/null; then
    echo "setup-deps: installing aioquic into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check aioquic==1.7.2
fi

command -v swift >/dev/null || {
    echo "setup-deps: 'swift' not found in PATH; install a Swift 6.1+ toolchain (swift.org) and add its usr/bin to PATH" >&2
    exit 1
}
if [[ $(cat /proc/sys/net/mptcp/enabled 2>/dev/null || echo 0) != 1 ]]; then
    echo "setup-deps: this kernel has MPTCP off or missing (net.mptcp.enabled); need Linux 5.15+ with CONFIG_MPTCP" >&2
    exit 1
fi
