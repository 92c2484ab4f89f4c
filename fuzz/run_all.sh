#!/usr/bin/env bash
# Builds every fuzz target, replays the regression files, then fuzzes each target for SECONDS.
# Usage: fuzz/run_all.sh SECONDS [ARTIFACT_DIR]   (the time is per target; default 60)
# Exits non-zero if any target crashed, timed out or ran out of memory (artifacts under
# ARTIFACT_DIR/TARGET, default $FUZZ_BIN/artifacts/TARGET).
set -uo pipefail
export SWIFT_BACKTRACE="${SWIFT_BACKTRACE:-enable=no}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECS="${1:-60}"
BIN_DIR="${FUZZ_BIN:-.build/fuzz}"
"$ROOT/fuzz/build.sh" "$BIN_DIR" || exit 2
status=0
for f in fuzz/*.swift; do
    t="$(basename "$f" .swift)"
    [ -x "$BIN_DIR/$t" ] || { echo "warning: $t not built, skipped" >&2; continue; }
    # Known crashes first: each must now be refused cleanly (libFuzzer runs the files once).
    if [ -d "Tests/Data/fuzz-regressions/$t" ] && [ -n "$(ls -A "Tests/Data/fuzz-regressions/$t")" ]; then
        "$BIN_DIR/$t" -timeout=2 -rss_limit_mb=2048 -detect_leaks=0 "Tests/Data/fuzz-regressions/$t"/* >/dev/null 2>&1 \
            || { echo "== $t: a regression file still fails (run $BIN_DIR/$t Tests/Data/fuzz-regressions/$t/*)" >&2; status=1; }
    fi
    "$ROOT/fuzz/run.sh" "$t" "$SECS" ${2:+"$2/$t"} || status=1
done
exit $status
