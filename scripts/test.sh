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

swift build
swift test "$@"
# The tunnel header parser under libFuzzer for a bounded time (reuses this build's objects).
if [[ $# -eq 0 ]]; then
    SCRATCH="$PWD/.build" Fuzz/run.sh "${FUZZ_SECONDS:-30}"
fi
