#!/usr/bin/env bash
# Builds the Debian package (scripts/package-deb.sh) and tests it installed, as root:
# dpkg -i, the binaries run, man pages and completions are in place, an edited conffile
# survives a reinstall, and dpkg --purge leaves no file and no user behind.
#   scripts/test-deb.sh               # package this checkout (CI: a fresh clone)
#   DEB_FROM_CLONE=1 scripts/test-deb.sh   # package a fresh clone of HEAD (slower: cold build)
#   DEB=path/to.deb scripts/test-deb.sh    # test a package already built
#
# The install happens on a throwaway copy-on-write view of this host: a private mount
# namespace with an overlay over / and chroot into it. dpkg, adduser and man run exactly as
# on the host, but nothing they write (the package, its user, the removal of Debian's
# mptcpize that the package replaces) reaches the host, on any exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
pass() { echo "test-deb: ok: $*"; }

if [[ ${1:-} == --inside ]]; then
    # Runs in the chroot (see the bottom of this file). $2: the .deb, $3: its version.
    deb=$2; version=$3
    export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive
    dpkg -i "$deb" </dev/null >/tmp/dpkg-install.log 2>&1 || { cat /tmp/dpkg-install.log; fail "dpkg -i"; }
    pass "dpkg -i $(basename "$deb")"

    [[ $(mptcp-relay --version) == "$version" ]] || fail "mptcp-relay --version says '$(mptcp-relay --version)', package is $version"
    [[ $(mptcpize --version) == "$version" ]] || fail "mptcpize --version says '$(mptcpize --version)', package is $version"
    pass "mptcp-relay --version = mptcpize --version = $version"

    mptcp-relay check --config /etc/mptcp-relay/config.toml --no-bind || fail "check refuses the shipped config"
    pass "the shipped config passes check --no-bind"

    out=$(mptcpize check) || { echo "$out"; fail "mptcpize check"; }
    grep -q '^shim: *.*/usr/lib/mptcpize/libmptcpize.so$' <<<"$out" || { echo "$out"; fail "mptcpize check did not find the installed shim"; }
    # 262 = IPPROTO_MPTCP: the installed shim really turned the program's TCP socket into MPTCP.
    proto=$(mptcpize run python3 -c 'import socket; print(socket.socket().getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL))')
    [[ $proto == 262 ]] || fail "mptcpize run: socket protocol $proto, expected 262 (MPTCP)"
    pass "mptcpize check finds the shim; mptcpize run gives an MPTCP socket"

    needs=$(readelf -d /usr/lib/mptcpize/libmptcpize.so | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
    [[ $needs == "libc.so.6 " || $needs == "libdl.so.2 libc.so.6 " || $needs == "libc.so.6 libdl.so.2 " ]] \
        || fail "the installed shim needs more than libc: $needs"
    ! ldd /usr/bin/mptcp-relay /usr/bin/mptcpize | grep -q libswift || fail "a binary links the Swift runtime dynamically"
    pass "the shim needs libc only; the binaries need no Swift runtime from the toolchain"

    for page in mptcp-relay mptcp-relay-run mptcp-relay-check mptcp-relay-nft mptcpize; do
        [[ $(man -w "$page") == /usr/share/man/man1/$page.1.gz ]] || fail "man -w $page: $(man -w "$page" 2>&1)"
    done
    [[ $(man -w 5 mptcp-relay.conf) == /usr/share/man/man5/mptcp-relay.conf.5.gz ]] || fail "man -w 5 mptcp-relay.conf"
    # The pages render without groff warnings.
    for page in mptcp-relay mptcp-relay.conf; do
        warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings "$page" 2>&1 >/dev/null) || true
        [[ -z $warnings ]] || fail "man $page: $warnings"
    done
    pass "man -w finds mptcp-relay(1), its subcommands, mptcpize(1), mptcp-relay.conf(5)"

    for cmd in mptcp-relay mptcpize; do
        [[ -s /usr/share/zsh/vendor-completions/_$cmd ]] || fail "no zsh completion for $cmd"
        [[ -s /usr/share/fish/vendor_completions.d/$cmd.fish ]] || fail "no fish completion for $cmd"
        # Sourcing the bash file must register a completion function for the command.
        bash -c "source /usr/share/bash-completion/completions/$cmd && complete -p $cmd" >/dev/null \
            || fail "bash completion for $cmd does not register"
    done
    pass "bash (registers), zsh and fish completions in place"

    getent passwd mptcp-relay >/dev/null || fail "no mptcp-relay user after install"
    [[ $(stat -c %G /etc/mptcp-relay/config.toml) == mptcp-relay ]] || fail "config not group mptcp-relay"
    uid=$(id -u mptcp-relay)
    pass "system user mptcp-relay (uid $uid) owns the config's group"

    conf=/etc/mptcp-relay/config.toml
    sed -i 's/^log_level = "info"/log_level = "debug"/' "$conf"
    echo '# edited by test-deb.sh' >> "$conf"
    edited=$(sha256sum < "$conf")
    dpkg -i "$deb" </dev/null >/tmp/dpkg-reinstall.log 2>&1 || { cat /tmp/dpkg-reinstall.log; fail "reinstall"; }
    [[ $(sha256sum < "$conf") == "$edited" ]] || fail "reinstall replaced the edited conffile"
    mptcp-relay check --config "$conf" --no-bind >/dev/null || fail "edited config no longer passes check"
    pass "an edited conffile survives reinstalling (sha256 unchanged)"

    files=$(dpkg -L mptcp-relay | while read -r f; do [[ -d $f ]] || echo "$f"; done)
    dpkg --purge mptcp-relay </dev/null >/tmp/dpkg-purge.log 2>&1 || { cat /tmp/dpkg-purge.log; fail "purge"; }
    left=$(for f in $files; do [[ -e $f ]] && echo "$f"; done || true)
    [[ -z $left ]] || fail "files left after purge: $left"
    [[ ! -e /etc/mptcp-relay ]] || fail "/etc/mptcp-relay left after purge"
    ! getent passwd mptcp-relay >/dev/null || fail "user mptcp-relay left after purge"
    ! getent group mptcp-relay >/dev/null || fail "group mptcp-relay left after purge"
    echo "$uid" > /tmp/purged-uid
    pass "dpkg --purge: $(wc -w <<<"$files") files, /etc/mptcp-relay, user and group gone"
    exit 0
fi

[[ $(id -u) -eq 0 ]] || { echo "test-deb: not root: skipped (needs mount namespaces and dpkg)" >&2; exit 0; }

start=$(date +%s)
if [[ -n ${DEB:-} ]]; then
    deb=$(realpath "$DEB")
elif [[ -n ${DEB_FROM_CLONE:-} ]]; then
    clone=$(mktemp -d /tmp/mptcp-relay-clone.XXXXXX)
    trap 'rm -rf "$clone"' EXIT
    # Detached at this HEAD (a worktree's clone would otherwise check out the main branch).
    git clone -q --no-checkout "$root" "$clone/src"
    git -C "$clone/src" checkout -q --detach "$(git rev-parse HEAD)"
    deb=$(OUT_DIR="$clone/out" "$clone/src/scripts/package-deb.sh" | tail -n 1)
else
    deb=$(scripts/package-deb.sh | tail -n 1)
fi
[[ -f $deb ]] || fail "package-deb.sh made no package"
built=$(date +%s)
version=$(dpkg-deb -f "$deb" Version)
echo "test-deb: built $deb in $((built - start)) s"

# The throwaway view of the host: overlay over /, tmpfs upper layer, all in a private mount
# namespace that vanishes with the last process in it.
unshare --mount --propagation private bash -euo pipefail -s "$root/scripts/test-deb.sh" "$deb" "$version" <<'OVERLAY'
self=$1; deb=$2; version=$3
top=$(mktemp -d /tmp/test-deb.XXXXXX)
mount -t tmpfs tmpfs "$top"
mkdir "$top/upper" "$top/work" "$top/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$top/upper,workdir=$top/work" "$top/root"
mount --rbind /proc "$top/root/proc"
mount --rbind /dev "$top/root/dev"
mount --rbind /sys "$top/root/sys"
mount -t tmpfs tmpfs "$top/root/tmp"
cp "$deb" "$self" "$top/root/tmp/"
status=0
chroot "$top/root" bash /tmp/test-deb.sh --inside "/tmp/$(basename "$deb")" "$version" || status=$?
if [[ $status -eq 0 ]]; then
    # Whatever the package wrote and purge did not remove (whiteouts, -type c, are removals;
    # dpkg's own database and log remember the package by design).
    uid=$(cat "$top/root/tmp/purged-uid")
    left=$(cd "$top/upper" && find . \( -path ./var/lib/dpkg -o -path ./var/log -o -path ./var/cache \
        -o -path ./tmp -o -path ./etc/ld.so.cache \) -prune -o ! -type c \
        \( -iname '*mptcp-relay*' -o -uid "$uid" -o -gid "$uid" \) -print)
    if [[ -n $left ]]; then
        echo "test-deb: FAIL: left on disk after purge: $left" >&2; status=1
    else
        echo "test-deb: ok: nothing named mptcp-relay or owned by uid $uid written outside dpkg's database"
    fi
fi
umount -R "$top/root" 2>/dev/null || umount -lR "$top/root"
umount "$top"
rmdir "$top"
exit $status
OVERLAY
echo "test-deb: passed in $(($(date +%s) - start)) s (package build $((built - start)) s)"
