#!/usr/bin/env bash
# Builds the libFuzzer target over the tunnel header parser and runs it for a bounded time.
#   Fuzz/run.sh [SECONDS]        (default 60; scripts/test.sh, and so CI, runs it for $FUZZ_SECONDS, 30)
# Env: SCRATCH (SwiftPM scratch path for the dependencies, default .build-fuzz),
#      SWIFT_BIN (toolchain bin dir, default /opt/swift/usr/bin), FUZZ_JOBS (default 1).
# Exit status: 0 when no crash was found; libFuzzer's status (and a crash-* file) otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_TO_RUN=${1:-60}
SWIFT_BIN=${SWIFT_BIN:-$(dirname "$(command -v swift || echo /opt/swift/usr/bin/swift)")}
SCRATCH=${SCRATCH:-$ROOT/.build-fuzz}
OUT=$SCRATCH/fuzz
mkdir -p "$OUT"

# 1. The module's dependencies (MPTCPSocket, swift-crypto, ...), built the normal way.
"$SWIFT_BIN/swift" build --scratch-path "$SCRATCH" --target TunnelProtocol >"$OUT/swift-build.log" 2>&1 \
    || { tail -30 "$OUT/swift-build.log"; echo "run.sh: dependency build failed" >&2; exit 1; }
BIN=$("$SWIFT_BIN/swift" build --scratch-path "$SCRATCH" --show-bin-path)

# Objects of every dependency target; our own module is recompiled below with instrumentation.
mapfile -t OBJECTS < <(find "$BIN" -path '*/TunnelProtocol.build' -prune -o \
    \( -path "$BIN/CCryptoBoringSSL.build/*" -o -path "$BIN/CCryptoBoringSSLShims.build/*" \
       -o -path "$BIN/CryptoBoringWrapper.build/*" -o -path "$BIN/Crypto.build/*" \
       -o -path "$BIN/MPTCPSocket.build/*" -o -path "$BIN/CNetLinux.build/*" \
       -o -path "$BIN/SystemPackage.build/*" -o -path "$BIN/CSystem.build/*" \) -name '*.o' -print)
# Clang module maps the imported Swift modules refer to.
MODULEMAP_ARGS=()
while IFS= read -r map; do
    MODULEMAP_ARGS+=(-Xcc "-fmodule-map-file=$map" -Xcc -I -Xcc "$(dirname "$map")")
done < <(find "$SCRATCH/checkouts/swift-crypto/Sources/CCryptoBoringSSL/include" \
              "$SCRATCH/checkouts/swift-crypto/Sources/CCryptoBoringSSLShims/include" \
              "$SCRATCH/checkouts/swift-system/Sources/CSystem/include" \
              "$BIN/CNetLinux.build" -maxdepth 1 -name module.modulemap)
MODULEMAP_ARGS+=(-Xcc -I -Xcc "$ROOT/Sources/CNetLinux/include")

# 2. Parser + harness as one module, with coverage instrumentation and AddressSanitizer.
"$SWIFT_BIN/swiftc" -sanitize=fuzzer,address -parse-as-library -O -g \
    -module-name TunnelProtocol -swift-version 6 \
    -I "$BIN/Modules" "${MODULEMAP_ARGS[@]}" \
    "$ROOT"/Sources/TunnelProtocol/*.swift "$ROOT/Fuzz/TunnelHeaderFuzz.swift" \
    "${OBJECTS[@]}" -lstdc++ -o "$OUT/tunnel-header-fuzz" >"$OUT/swiftc.log" 2>&1 \
    || { grep -v 'Cannot export local symbol' "$OUT/swiftc.log" | tail -40; echo "run.sh: fuzz target build failed" >&2; exit 1; }

# 3. Seeds: the documented example requests (docs/tunnel-protocol.md) and replies.
CORPUS=$OUT/corpus
mkdir -p "$CORPUS"
seed() { printf "$(printf '%s' "$2" | sed 's/../\\x&/g')" >"$CORPUS/$1"; }
seed request-v4 011200000a0501bb00000000000000000000ffffc000020ac00c0100630dcd29000000006553f10000112233445566778899aabbccddeeff5e99c368f41e749f77073e4fbfb71213
seed request-v6 011200000a05005020010db8000000000000000000000001c00c0100630dcd29000000006553f10000112233445566778899aabbccddeeff308f12e11d039507479715378b0e2d86
# Issue 26: a request naming key "site-a" (Key Name TLV, type 194) and a ping naming it.
seed request-named 011500000a0501bb00000000000000000000ffffc000020ac20306736974652d61000000c00c0100630dcd29000000006553f10000112233445566778899aabbccddeeffd50106a605db0eacc8e8744f55f4084f
seed ping-named 011500000a05000000000000000000000000000000000000c20306736974652d61000000c00c0100630dcd29000000006553f10000112233445566778899aabbccddeeff2c05f62ba70fc1882b359654bcac7a87
seed reply-ok 01010000
seed reply-error 010200001e012000

# 4. Bounded run. Crash reproducers land in $OUT (artifact_prefix).
echo "run.sh: fuzzing the tunnel header parser for ${SECONDS_TO_RUN}s"
set +e
"$OUT/tunnel-header-fuzz" "$CORPUS" -max_total_time="$SECONDS_TO_RUN" -max_len=1100 \
    -print_final_stats=1 -artifact_prefix="$OUT/" >"$OUT/fuzz.log" 2>&1
status=$?
set -e
# Progress lines without the per-input NEW/REDUCE noise; a crash report is printed in full.
grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE)' "$OUT/fuzz.log" | tail -n 60
if [ "$status" -ne 0 ]; then
    echo "run.sh: the fuzzer found a problem (status $status); reproducer: $(ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* 2>/dev/null | head -1)" >&2
fi
exit "$status"
