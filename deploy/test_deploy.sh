#!/usr/bin/env bash
# Every check of deploy/: the static validation (k8s, Dockerfile, systemd, nginx -t, the binary's
# shared libraries vs the runtime image), the live nginx test and the live generation test on loopback.
#
#   bash deploy/test_deploy.sh [BINARY]     # BINARY: default $ONESTEP_BIN, else .build/release/onestep
#
# Exits non-zero if either part fails; the last line is "test_deploy: N passed, M failed" (parts).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-${ONESTEP_BIN:-$ROOT/.build/release/onestep}}"
pass=0; fail=0

# validate.py needs PyYAML: the first python3 that has it, else Debian's python3-yaml.
PY=""
for c in python3 /usr/bin/python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import yaml' 2>/dev/null; then PY="$c"; break; fi
done
if [ -z "$PY" ] && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-yaml) >/dev/null 2>&1
    /usr/bin/python3 -c 'import yaml' 2>/dev/null && PY=/usr/bin/python3
fi
if [ -n "$PY" ] && "$PY" "$ROOT/deploy/validate.py" --binary "$BIN"; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
if bash "$ROOT/deploy/test_nginx.sh" "$BIN"; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
if bash "$ROOT/deploy/test_generate.sh" "$BIN"; then pass=$((pass + 1)); else fail=$((fail + 1)); fi

echo "test_deploy: $pass passed, $fail failed"
[ "$fail" = 0 ]
