#!/bin/sh
# Prints the version of this source tree, the one string that both the binaries (`--version`,
# stamped at build time by Plugins/VersionStamp) and the Debian package carry.
#   tag v1.2.3 at HEAD          -> 1.2.3
#   3 commits after tag v1.2.3  -> 1.2.3+git3.gabc1234
#   no tag yet                  -> <VERSION file>+git<commit count>.g<hash>
#   uncommitted changes         -> ... .dirty appended
#   no git (tarball)            -> the VERSION file as is
# Every form is a valid Debian upstream version and sorts upward as commits are added.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
base=$(tr -d ' \n' < "$root/VERSION" 2>/dev/null || echo 0.0.0)

if ! command -v git >/dev/null 2>&1 || ! git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
    echo "$base"; exit 0
fi
dirty=""
# git status compares contents (diff-index alone calls a merely touched file dirty) and
# skips, rather than fails, when another git command holds the index lock.
[ -z "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] || dirty=".dirty"

if described=$(git -C "$root" describe --tags --match 'v[0-9]*' --long 2>/dev/null); then
    # v1.2.3-N-gHASH
    tag=${described%-*-g*}; rest=${described#"$tag"-}
    count=${rest%%-*}; hash=${rest#*-}
    version=${tag#v}
    [ "$count" = 0 ] || version="$version+git$count.$hash"
else
    count=$(git -C "$root" rev-list --count HEAD)
    hash=$(git -C "$root" rev-parse --short=8 HEAD)
    version="$base+git$count.g$hash"
fi
[ -z "$dirty" ] || case $version in *+*) version="$version$dirty" ;; *) version="$version+dirty" ;; esac
echo "$version"
