#!/usr/bin/env bash
# Builds the container images of the aggregation server and the gateway, offline from a
# registry: the base is Debian 12 made with debootstrap (from the Debian mirror apt uses)
# and imported into Podman; mptcp-relay comes from its Debian package.
#   scripts/build-images.sh                 # builds the .deb too (a release build: minutes)
#   DEB=out/mptcp-relay_X_amd64.deb scripts/build-images.sh
# -> localhost/mptcp-relay-server:latest, localhost/mptcp-relay-gateway:latest
# Needs root, podman with runc, debootstrap (scripts/setup-deps.sh --containers installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
die() { echo "build-images.sh: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap, podman)"
for tool in podman debootstrap dpkg-deb; do command -v "$tool" >/dev/null || die "'$tool' not found: scripts/setup-deps.sh --containers"; done
# Podman here runs with runc (crun fails on this host's cgroups) and builds with chroot isolation.
export CONTAINERS_CONF_OVERRIDE=${CONTAINERS_CONF_OVERRIDE:-}
podman_=(podman --runtime runc)

deb=${DEB:-}
if [[ -z $deb ]]; then
    DEB_COMPRESSION=gzip OUT_DIR="$root/out" scripts/package-deb.sh
    deb=$(ls -t "$root"/out/mptcp-relay_*.deb | head -1)
fi
[[ -f $deb ]] || die "no package at '$deb'"

# The base: what the package depends on, plus nftables and iproute2 for the gateway.
base=localhost/mptcp-relay-base:bookworm
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' | grep -v '^$' | paste -sd, -)
if ! "${podman_[@]}" image exists "$base" || [[ ${REBUILD_BASE:-0} == 1 ]]; then
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
    mirror=${mirror:-http://deb.debian.org/debian}
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
    echo "build-images.sh: debootstrap bookworm from $mirror (+ $depends,nftables,iproute2)"
    debootstrap --variant=minbase --include="$depends,nftables,iproute2" bookworm "$dir" "$mirror" >/dev/null
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar -C "$dir" -c . | "${podman_[@]}" import - "$base" >/dev/null
fi

ctx=$(mktemp -d)
cp "$deb" "$ctx/mptcp-relay.deb"
cp packaging/container/gateway-entrypoint.sh "$ctx/"
for role in server gateway; do
    "${podman_[@]}" build --isolation chroot -q -f "$root/packaging/container/Containerfile.$role" -t "localhost/mptcp-relay-$role:latest" "$ctx" >/dev/null
    echo "build-images.sh: localhost/mptcp-relay-$role:latest ($("${podman_[@]}" image inspect -f '{{.Size}}' "localhost/mptcp-relay-$role:latest" | awk '{printf "%.0f MB", $1/1e6}'))"
done
rm -rf "$ctx"
