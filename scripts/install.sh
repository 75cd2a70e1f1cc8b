#!/bin/sh
# Installs mptcp-relay: binary, nft helper, systemd units, example configs, docs, and the
# unprivileged mptcp-relay user. Builds in release mode unless BIN_DIR names built binaries.
#   sudo scripts/install.sh                 # PREFIX=/usr/local
#   PREFIX=/opt/mptcp-relay sudo -E scripts/install.sh
#   DESTDIR=/tmp/stage scripts/install.sh   # staged install: no user, no systemctl
# Does not install mptcpize (scripts/install-mptcpize.sh does) and never overwrites
# /etc/mptcp-relay/config.toml.
set -eu

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
SYSCONFDIR=${SYSCONFDIR:-/etc/mptcp-relay}
UNITDIR=${UNITDIR:-/etc/systemd/system}
USER_NAME=mptcp-relay
root=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "install.sh: $*" >&2; exit 1; }
[ -n "$DESTDIR" ] || [ "$(id -u)" -eq 0 ] || die "run as root (or set DESTDIR for a staged install)"

if [ -z "${BIN_DIR:-}" ]; then
    (cd "$root" && swift build -c release --product mptcp-relay) || die "swift build failed"
    BIN_DIR=$(cd "$root" && swift build -c release --show-bin-path)
fi
[ -x "$BIN_DIR/mptcp-relay" ] || die "no mptcp-relay binary in $BIN_DIR"

libexec="$PREFIX/libexec/mptcp-relay"
doc="$PREFIX/share/doc/mptcp-relay"
install -d "$DESTDIR$PREFIX/bin" "$DESTDIR$libexec" "$DESTDIR$doc/examples" "$DESTDIR$UNITDIR"
install -m 0755 "$BIN_DIR/mptcp-relay" "$DESTDIR$PREFIX/bin/mptcp-relay"
install -m 0755 "$root/scripts/mptcp-relay-nft.sh" "$DESTDIR$libexec/mptcp-relay-nft"
install -m 0644 "$root"/examples/*.toml "$DESTDIR$doc/examples/"
install -m 0644 "$root/docs/configuration.md" "$DESTDIR$doc/"

# Units name /usr/local and /etc/mptcp-relay; rewrite them for other locations.
for unit in mptcp-relay.service mptcp-relay-nft.service; do
    sed -e "s|/usr/local|$PREFIX|g" -e "s|/etc/mptcp-relay|$SYSCONFDIR|g" \
        "$root/systemd/$unit" > "$DESTDIR$UNITDIR/$unit"
    chmod 0644 "$DESTDIR$UNITDIR/$unit"
done

if [ -z "$DESTDIR" ] && ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
        --comment "mptcp-relay daemon" "$USER_NAME"
fi

# Config readable by the daemon's group only: it may name key files.
install -d -m 0750 "$DESTDIR$SYSCONFDIR"
if [ ! -e "$DESTDIR$SYSCONFDIR/config.toml" ]; then
    install -m 0640 "$root/examples/gateway.toml" "$DESTDIR$SYSCONFDIR/config.toml"
    echo "installed an example config: edit $SYSCONFDIR/config.toml (lan_interfaces, exclude)"
fi
if [ -z "$DESTDIR" ]; then
    chgrp "$USER_NAME" "$SYSCONFDIR" "$SYSCONFDIR/config.toml"
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
fi

cat <<MSG
mptcp-relay installed in $PREFIX. Next:
  mptcp-relay check --config $SYSCONFDIR/config.toml
  systemctl enable --now mptcp-relay.service     # pulls in mptcp-relay-nft.service
MSG
