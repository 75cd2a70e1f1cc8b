#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (unit and integration).
# The integration tests build network namespaces: run as root. Extra arguments go to
# `swift test` (e.g. --filter Integration).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
if [[ $(id -u) -ne 0 ]]; then
    echo "test.sh: not root: the integration tests (network namespaces) will be skipped" >&2
fi
# Testbeds left by an interrupted earlier run ("it-<pid>-<n>") go first.
scripts/testbed.sh list 2>/dev/null | grep -E '^it-[0-9]+-[0-9]+$' | while read -r tb; do
    pid=${tb#it-}; pid=${pid%-*}
    kill -0 "$pid" 2>/dev/null || scripts/testbed.sh down "$tb"
done || true

# Namespaces of other test targets (mptcpize "mz<pid>x...", config "rcfg<pid><letter>...",
# named with the whole pid) left by a killed run.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    if [[ $ns =~ ^(mz|rcfg)([0-9]+) ]] && ! kill -0 "${BASH_REMATCH[2]}" 2>/dev/null; then
        ip netns del "$ns" 2>/dev/null || true
    fi
done

swift build
if [[ $# -gt 0 ]]; then
    exec swift test "$@"
fi
# All test targets share one process; the integration tests run apart so that no other
# target's load (thread stress tests, 100k-input property tests) shares the two cores
# with the shaped-link transfers.
swift test --skip IntegrationTests
swift test --filter IntegrationTests
# The same checks on the kernels users run (Debian 12's 6.1 under qemu); skipped with a
# message only where qemu cannot run.
scripts/test-kernels.sh
# The Debian package: release build, lintian, installed and purged on a throwaway overlay of
# this host (scripts/test-deb.sh). Costs one release build: 5-9 min on 2 cores from a fresh
# clone; DEB_TEST=0 skips it. gzip: xz would add a minute of compression.
if [[ ${DEB_TEST:-1} != 0 ]]; then
    DEB_COMPRESSION=gzip scripts/test-deb.sh
fi
# The tunnel header parser under libFuzzer for a bounded time (reuses this build's objects).
SCRATCH="$PWD/.build" Fuzz/run.sh "${FUZZ_SECONDS:-30}"
