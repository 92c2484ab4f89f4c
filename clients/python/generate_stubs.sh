#!/bin/sh
# Regenerates the committed Python stubs of the Sampler API (clients/python/generated/) from
# Protos/ with grpcio-tools (pinned in requirements.txt). `--check` fails if they drifted.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
out=$here/generated
if [ "${1:-}" = "--check" ]; then out=$(mktemp -d); fi
mkdir -p "$out"
"$python" -m grpc_tools.protoc -I"$here/../../Protos" --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" \
    onestep/sampler/v1/sampler.proto
if [ "${1:-}" = "--check" ]; then
    diff -r "$here/generated/onestep" "$out/onestep" && echo "stubs up to date"
fi
