#!/bin/sh
# Installs or removes the interception rules a mptcp-relay config needs:
# the nftables table from `mptcp-relay nft --config FILE` and, for TPROXY, the
# `ip rule` / `ip route` lines it carries as "# route-up:" / "# route-down:" comments.
# Usage: mptcp-relay-nft up|down [CONFIG]    (run as root; used by mptcp-relay-nft.service)
set -eu

action=${1:-}
config=${2:-/etc/mptcp-relay/config.toml}
relay=${MPTCP_RELAY:-$(command -v mptcp-relay || echo /usr/local/bin/mptcp-relay)}
table="inet mptcp_relay"

die() { echo "mptcp-relay-nft: $*" >&2; exit 1; }

# Runs the commands tagged $1 in the ruleset; a missing rule/route on removal is fine.
routes() {
    printf '%s\n' "$ruleset" | sed -n "s/^# $1: //p" | while read -r cmd; do
        if [ "$1" = route-down ]; then $cmd 2>/dev/null || true; else $cmd; fi
    done
}

case "$action" in
up)
    ruleset=$("$relay" nft --config "$config") || die "'$relay nft --config $config' failed (run: mptcp-relay check --config $config)"
    # The table replaces itself atomically; routes are removed first so reruns do not stack rules.
    printf '%s\n' "$ruleset" | nft -f - || die "nft refused the ruleset from $config"
    routes route-down
    routes route-up
    ;;
down)
    # Without a readable config there are no route lines: still drop the table.
    ruleset=$("$relay" nft --config "$config" 2>/dev/null) || ruleset=""
    routes route-down
    if nft list table $table >/dev/null 2>&1; then nft delete table $table; fi
    ;;
*)
    echo "usage: $0 up|down [CONFIG]" >&2
    exit 2
    ;;
esac
