#!/usr/bin/env bash
# Builds the Debian package of mptcp-relay from this source tree, in one command:
#   scripts/package-deb.sh                # -> out/mptcp-relay_<version>_<arch>.deb
#   OUT_DIR=/tmp/debs scripts/package-deb.sh
#   DEB_COMPRESSION=gzip scripts/package-deb.sh   # faster (tests); default xz: 20 MB, gzip 29 MB
# Release build with the Swift standard library linked statically (README "Debian package"
# says why), man pages and shell completions generated from the argument definitions,
# Depends computed by dpkg-shlibdeps, then lintian (errors fail the build).
# Needs: a Swift toolchain, dpkg-dev, lintian, man-db (scripts/setup-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

die() { echo "package-deb.sh: $*" >&2; exit 1; }
for tool in swift dpkg-deb dpkg-shlibdeps fakeroot lintian strip gzip; do
    command -v "$tool" >/dev/null || die "'$tool' not found; run scripts/setup-deps.sh"
done

version=$(scripts/version.sh)
arch=$(dpkg --print-architecture)
out_dir=${OUT_DIR:-$root/out}
# The commit's date, not today's: the same commit gives the same man pages and changelog.
if git rev-parse --git-dir >/dev/null 2>&1; then
    epoch=$(git log -1 --format=%ct)
else
    epoch=$(stat -c %Y VERSION)
fi
export SOURCE_DATE_EPOCH=$epoch
day=$(date -u -d "@$epoch" +%Y-%m-%d)
echo "package-deb.sh: mptcp-relay $version ($arch)"

# The standard library is linked statically (no Debian package ships the Swift 6 runtime), so
# only Debian libraries remain to depend on. The flag goes through -Xswiftc rather than
# --static-swift-stdlib because `swift package` (step 1) accepts only the former, and the
# same flags in both steps make step 2 a no-op instead of a second release build.
static=(-Xswiftc -static-stdlib)

# 1. Man pages. The generate-manual plugin builds the package in release mode and asks each
#    CLI for its --experimental-dump-help.
manual_dir=$root/.build/plugins/GenerateManual/outputs
rm -rf "$manual_dir"   # no page of a subcommand that no longer exists
swift package "${static[@]}" plugin generate-manual --multi-page --date "$day" \
    --authors "the mptcp-relay authors" >/dev/null
ls "$manual_dir"/mptcp-relay/*.1 >/dev/null 2>&1 || die "generate-manual left no pages in $manual_dir"

# 2. The binaries (already built by step 1).
swift build -c release "${static[@]}"
bin=$(swift build -c release "${static[@]}" --show-bin-path)
for f in mptcp-relay mptcpize-cli libmptcpize.so; do
    [[ -f $bin/$f ]] || die "no $f in $bin after the build"
done
built_version=$("$bin/mptcp-relay" --version)
[[ $built_version == "$version" ]] || die "binary says $built_version, tree is $version (stale build?)"
if ldd "$bin/mptcp-relay" "$bin/mptcpize-cli" | grep -q 'libswift'; then
    die "the binaries still link the Swift runtime dynamically"
fi
stage=$(mktemp -d "${TMPDIR:-/tmp}/mptcp-relay-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
shim=$bin/libmptcpize.so
# The shim is LD_PRELOADed into every program mptcpize runs: it must need libc (and libdl)
# only. Until the SwiftPM product is built that way (a .dynamic product pulls in libstdc++
# and, with -static-stdlib, a 6 MB copy of the Swift runtime), build it with cc alone.
extra_needs=$(readelf -d "$shim" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | grep -vx 'libc.so.6\|libdl.so.2' || true)
if [[ -n $extra_needs ]]; then
    echo "package-deb.sh: $shim also needs $(echo $extra_needs); building the shim with cc instead" >&2
    shim=$stage/libmptcpize.so
    cc -shared -fPIC -O2 -Wall -I Sources/CMPTCPize/include -I Sources/CMPTCPize \
        -Wl,-z,relro,-z,now -o "$shim" Sources/CMPTCPize/*.c -ldl
fi

# 3. The tree, in its FHS places.
pkg=$stage/mptcp-relay
doc=$pkg/usr/share/doc/mptcp-relay
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/libexec/mptcp-relay" "$pkg/usr/lib/mptcpize" \
    "$pkg/lib/systemd/system" "$pkg/etc/mptcp-relay" "$doc/examples" \
    "$pkg/usr/share/man/man1" "$pkg/usr/share/man/man5" \
    "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" \
    "$pkg/usr/share/fish/vendor_completions.d"
install -m 0755 "$bin/mptcp-relay" "$pkg/usr/bin/mptcp-relay"
install -m 0755 "$bin/mptcpize-cli" "$pkg/usr/bin/mptcpize"
# Private library directory: LD_PRELOAD takes it by absolute path (ShimLocator finds it).
install -m 0644 "$shim" "$pkg/usr/lib/mptcpize/libmptcpize.so"
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
    "$pkg/usr/bin/mptcp-relay" "$pkg/usr/bin/mptcpize" "$pkg/usr/lib/mptcpize/libmptcpize.so"
install -m 0755 scripts/mptcp-relay-nft.sh "$pkg/usr/libexec/mptcp-relay/mptcp-relay-nft"

# Units name /usr/local (scripts/install.sh's prefix); the package lives in /usr.
for unit in mptcp-relay.service mptcp-relay-nft.service; do
    sed -e 's|/usr/local/libexec|/usr/libexec|g' -e 's|/usr/local/bin|/usr/bin|g' \
        -e 's|^Documentation=.*|Documentation=man:mptcp-relay(1) man:mptcp-relay.conf(5)|' \
        "systemd/$unit" > "$pkg/lib/systemd/system/$unit"
    chmod 0644 "$pkg/lib/systemd/system/$unit"
done
grep -q /usr/local "$pkg"/lib/systemd/system/*.service && die "a unit still names /usr/local"

install -m 0644 packaging/debian/config.toml "$pkg/etc/mptcp-relay/config.toml"
install -m 0644 examples/*.toml "$doc/examples/"
install -m 0644 docs/configuration.md docs/mptcpize.md docs/tunnel-protocol.md "$doc/"
gzip -9n "$doc"/*.md
install -m 0644 packaging/debian/copyright "$doc/copyright"
printf '%s\n' \
    "mptcp-relay ($version) unstable; urgency=medium" "" \
    "  * Package built from $(git rev-parse --short=12 HEAD 2>/dev/null || echo 'a source tree')." "" \
    " -- mptcp-relay maintainers <mptcp-relay@example.org>  $(date -u -R -d "@$epoch")" \
    | gzip -9n > "$doc/changelog.gz"   # a native package: changelog.gz, not changelog.Debian.gz

# Man pages: generated ones for the CLIs, named the Debian way (mptcp-relay-run(1), not
# mptcp-relay.run(1)); the `help` subcommand gets no page.
for page in "$manual_dir"/mptcp-relay/*.1 "$manual_dir"/mptcpize/*.1; do
    name=$(basename "$page" .1)
    [[ $name == *.help ]] && continue
    name=${name//./-}
    # A subcommand's page: NAME gets the file's name (whatis), SYNOPSIS keeps the command line.
    cmd=$(sed -n 's/^\.Nm "\(.*\)"$/\1/p' "$page" | head -n 1)
    sed -e '/^\.Xr [a-z-]*\.help 1/d' \
        ${cmd:+-e "s/^\.Nm \"$cmd\"\$/.Nm $name/" -e "s/^\.Nm\$/.Nm \"$cmd\"/"} \
        -e 's/\(mptcp-relay\|mptcpize\)\.\(run\|check\|nft\|enable\|disable\)\b/\1-\2/g' \
        -e 's/\(MPTCP-RELAY\|MPTCPIZE\)\.\(RUN\|CHECK\|NFT\|ENABLE\|DISABLE\)\b/\1-\2/g' "$page" \
        | gzip -9n > "$pkg/usr/share/man/man1/$name.1.gz"
done
gzip -9n < packaging/debian/mptcp-relay.conf.5 > "$pkg/usr/share/man/man5/mptcp-relay.conf.5.gz"

# Completions, generated by the binaries being packaged.
"$bin/mptcp-relay" --generate-completion-script bash > "$pkg/usr/share/bash-completion/completions/mptcp-relay"
"$bin/mptcp-relay" --generate-completion-script zsh > "$pkg/usr/share/zsh/vendor-completions/_mptcp-relay"
"$bin/mptcp-relay" --generate-completion-script fish > "$pkg/usr/share/fish/vendor_completions.d/mptcp-relay.fish"
"$bin/mptcpize-cli" --generate-completion-script bash > "$pkg/usr/share/bash-completion/completions/mptcpize"
"$bin/mptcpize-cli" --generate-completion-script zsh > "$pkg/usr/share/zsh/vendor-completions/_mptcpize"
"$bin/mptcpize-cli" --generate-completion-script fish > "$pkg/usr/share/fish/vendor_completions.d/mptcpize.fish"
# bash-completion sources these files: no #! line.
sed -i '1{/^#!/d}' "$pkg"/usr/share/bash-completion/completions/*
chmod 0644 "$pkg"/usr/share/{bash-completion/completions,zsh/vendor-completions,fish/vendor_completions.d}/*

# 4. Control files. Depends: what the binaries really link, by dpkg-shlibdeps.
shlib_dir=$stage/shlibs
install -d "$shlib_dir/debian"
printf 'Source: mptcp-relay\n\nPackage: mptcp-relay\nArchitecture: any\n' > "$shlib_dir/debian/control"
depends=$(cd "$shlib_dir" && dpkg-shlibdeps -O --warnings=0 \
    "$pkg/usr/bin/mptcp-relay" "$pkg/usr/bin/mptcpize" "$pkg/usr/lib/mptcpize/libmptcpize.so")
depends=${depends#shlibs:Depends=}
[[ -n $depends ]] || die "dpkg-shlibdeps found no dependencies"

install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$pkg/DEBIAN/"
echo /etc/mptcp-relay/config.toml > "$pkg/DEBIAN/conffiles"
installed_size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: mptcp-relay
Version: $version
Architecture: $arch
Maintainer: mptcp-relay maintainers <mptcp-relay@example.org>
Installed-Size: $installed_size
Depends: $depends, adduser
Recommends: nftables, iproute2
Conflicts: mptcpize
Replaces: mptcpize
Section: net
Priority: optional
Description: Multipath TCP for plain-TCP software: relay daemon and mptcpize
 mptcp-relay accepts plain TCP connections and re-originates each one as a
 Multipath TCP connection (io_uring and splice), in forward, transparent
 (TPROXY), redirect, server and tunnel modes, with systemd units and the
 nftables rules for a transparent LAN gateway.
 .
 mptcpize runs unmodified programs over MPTCP through an LD_PRELOAD library,
 and replaces Debian's mptcpize package of the same name.
CONTROL
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
    | xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/conffiles" "$pkg/DEBIAN/md5sums"

mkdir -p "$out_dir"
deb=$out_dir/mptcp-relay_${version}_${arch}.deb
fakeroot dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$pkg" "$deb" >/dev/null

# 5. lintian: errors fail; warnings are printed for a human to judge.
lintian_out=$(lintian --no-tag-display-limit "$deb" || true)
[[ -z $lintian_out ]] || echo "$lintian_out"
if grep -q '^E:' <<<"$lintian_out"; then
    die "lintian reports errors in $deb"
fi
echo "$deb"
