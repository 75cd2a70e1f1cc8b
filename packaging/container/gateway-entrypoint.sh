#!/bin/sh
# The gateway container's entry point: nftables rules and TPROXY routes from the config
# (`mptcp-relay nft`), then the relay; on its exit (or SIGTERM) the rules and routes go.
set -eu
config=${1:-/etc/mptcp-relay/config.toml}
mptcp-relay check --config "$config" --no-bind
mptcp-relay nft --config "$config" | nft -f -
mptcp-relay nft --config "$config" --routes | while read -r line; do $line 2>/dev/null || true; done
cleanup() {
    nft delete table inet mptcp_relay 2>/dev/null || true
    mptcp-relay nft --config "$config" | sed -n 's/^# route-down: //p' | while read -r line; do $line 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'kill -TERM "$relay" 2>/dev/null' TERM INT
mptcp-relay run --config "$config" &
relay=$!
# wait returns early on a trapped signal: wait again for the relay's own exit status.
status=0
wait "$relay" || status=$?
if kill -0 "$relay" 2>/dev/null; then wait "$relay" || status=$?; fi
exit "$status"
