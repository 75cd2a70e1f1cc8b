#!/usr/bin/env bash
# Builds and installs mptcpize: PREFIX/bin/mptcpize and PREFIX/lib/libmptcpize.so, the layout
# in which the CLI finds its library (../lib beside bin/). The `make install` of this package.
#
#   scripts/install-mptcpize.sh [install|uninstall]
#
# Environment: PREFIX (default /usr/local), DESTDIR (staging root for packagers, default none),
# SCRATCH (SwiftPM scratch path, default .build). The CLI is linked with the Swift runtime
# statically, so the installed files do not need the Swift toolchain at run time.
set -Eeuo pipefail

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
root=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${SCRATCH:-$root/.build}
bin_dir=$DESTDIR$PREFIX/bin
lib_dir=$DESTDIR$PREFIX/lib

die() { echo "install-mptcpize: $*" >&2; exit 1; }

build() {
    command -v swift >/dev/null || die "swift not found in PATH; install the Swift toolchain first"
    cd "$root"
    swift build -c release --scratch-path "$SCRATCH" --static-swift-stdlib --product mptcpize-cli >&2
    swift build -c release --scratch-path "$SCRATCH" --static-swift-stdlib --product mptcpize >&2
    swift build -c release --scratch-path "$SCRATCH" --static-swift-stdlib --show-bin-path
}

install_files() {
    local out
    out=$(build)
    [[ -f $out/mptcpize-cli && -f $out/libmptcpize.so ]] || die "build did not produce $out/mptcpize-cli and $out/libmptcpize.so"
    install -d "$bin_dir" "$lib_dir"
    install -m 0755 -s "$out/mptcpize-cli" "$bin_dir/mptcpize"
    install -m 0755 -s "$out/libmptcpize.so" "$lib_dir/libmptcpize.so"
    echo "installed $bin_dir/mptcpize and $lib_dir/libmptcpize.so"
    case ":$PATH:" in
        *":$PREFIX/bin:"*) ;;
        *) echo "note: $PREFIX/bin is not in PATH" ;;
    esac
}

uninstall_files() {
    rm -f "$bin_dir/mptcpize" "$lib_dir/libmptcpize.so"
    echo "removed $bin_dir/mptcpize and $lib_dir/libmptcpize.so"
}

case ${1:-install} in
    install) install_files ;;
    uninstall) uninstall_files ;;
    *) die "usage: $0 [install|uninstall]  (PREFIX=$PREFIX DESTDIR=$DESTDIR)" ;;
esac
