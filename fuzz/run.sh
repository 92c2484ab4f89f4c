#!/usr/bin/env bash
# Fuzzes one target for a fixed time. Usage:
#   fuzz/run.sh TARGET SECONDS [ARTIFACT_DIR]
# TARGET: safetensors | snapshot | snapshot_meta | requests | checks (a binary in $FUZZ_BIN,
# default .build/fuzz, made by fuzz/build.sh). Seeds: fuzz/corpus/TARGET and
# Tests/Data/fuzz-regressions/TARGET (read only); inputs it finds go to $FUZZ_BIN/work/TARGET.
# Crashes, timeouts (-timeout=2 s per input) and out-of-memory (-rss_limit_mb=2048) are written to
# ARTIFACT_DIR (default $FUZZ_BIN/artifacts/TARGET) and make the script exit non-zero.
# Extra libFuzzer flags: FUZZ_FLAGS (e.g. FUZZ_FLAGS="-jobs=2 -workers=2").
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ $# -ge 2 ] || { echo "usage: fuzz/run.sh TARGET SECONDS [ARTIFACT_DIR]" >&2; exit 2; }
T="$1"; SECS="$2"
BIN_DIR="${FUZZ_BIN:-.build/fuzz}"
BIN="$BIN_DIR/$T"
ART="${3:-$BIN_DIR/artifacts/$T}"
[ -x "$BIN" ] || { echo "error: no fuzzer $BIN (run fuzz/build.sh $BIN_DIR)" >&2; exit 2; }
WORK="$BIN_DIR/work/$T"
mkdir -p "$WORK" "$ART"
ART="$(cd "$ART" && pwd)"
SEEDS=("fuzz/corpus/$T")
[ -d "Tests/Data/fuzz-regressions/$T" ] && SEEDS+=("Tests/Data/fuzz-regressions/$T")
DICT=(); [ -f "fuzz/$T.dict" ] && DICT=(-dict="fuzz/$T.dict")
MARK="$(mktemp)"; trap 'rm -f "$MARK"' EXIT
echo "== fuzzing $T for $SECS s (artifacts: $ART)"
# The Swift runtime's backtracer takes SIGILL before libFuzzer and confuses ASan: off unless asked for.
export SWIFT_BACKTRACE="${SWIFT_BACKTRACE:-enable=no}"
# -detect_leaks=0: the Swift runtime's caches read as leaks to LeakSanitizer.
"$BIN" "$WORK" "${SEEDS[@]}" \
    -max_total_time="$SECS" -timeout=2 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -detect_leaks=0 -print_final_stats=1 "${DICT[@]}" -artifact_prefix="$ART/" ${FUZZ_FLAGS:-} 2>&1 \
    | grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse)' 
rc=${PIPESTATUS[0]}
new=$(find "$ART" -maxdepth 1 -type f -newer "$MARK" | wc -l)
if [ "$rc" -ne 0 ] || [ "$new" -gt 0 ]; then
    echo "== $T: FAILED (exit $rc); new artifacts in $ART:" >&2
    find "$ART" -maxdepth 1 -type f -newer "$MARK" -printf '  %p\n' >&2 || true
    echo "   reproduce: $BIN ARTIFACT; keep it: cp ARTIFACT Tests/Data/fuzz-regressions/$T/" >&2
    exit 1
fi
echo "== $T: no crash in $SECS s"
