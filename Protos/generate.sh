#!/usr/bin/env bash
# Regenerates the committed Swift code in Sources/SamplerAPI from the .proto files (CONTRIBUTING.md, "Adding an RPC").
#
#   Protos/generate.sh          regenerate into Sources/SamplerAPI
#   Protos/generate.sh --check  regenerate into a temporary folder and fail if it differs from the
#                               committed code (drift check for CI)
#
# Inputs: Protos/onestep/sampler/v1/sampler.proto, Protos/inference/grpc_service.proto (KServe V2,
# checked against the published descriptor by Protos/check_kserve_descriptor.py), and the standard
# grpc.health.v1 and grpc.reflection.v1 files from Debian's grpc-proto package.
# Needs: protoc (protobuf-compiler) and grpc-proto; builds protoc-gen-swift and
# protoc-gen-grpc-swift-2 in release from Protos/tools (about 1.5 minutes the first time; the build
# folder is PROTO_TOOLS_BUILD, default Protos/tools/.build, which git ignores).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
out_committed="$root/Sources/SamplerAPI"
grpc_proto="${GRPC_PROTO_DIR:-/usr/share/grpc-proto}"
tools_build="${PROTO_TOOLS_BUILD:-$here/tools/.build}"

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

command -v protoc >/dev/null || { echo "error: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
[ -f "$grpc_proto/grpc/health/v1/health.proto" ] || {
  echo "error: $grpc_proto/grpc/health/v1/health.proto not found (apt-get install grpc-proto)" >&2; exit 1; }

echo "building protoc plugins in $tools_build" >&2
(cd "$here/tools" && swift build -c release --scratch-path "$tools_build" --product protoc-gen-swift >&2 &&
  swift build -c release --scratch-path "$tools_build" --product protoc-gen-grpc-swift-2 >&2)
bin="$(cd "$here/tools" && swift build -c release --scratch-path "$tools_build" --show-bin-path)"

if [ "$check" = 1 ]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
else
  out="$out_committed"
  mkdir -p "$out"
  rm -f "$out"/*.pb.swift "$out"/*.grpc.swift
fi

# Our files are named relative to Protos/; the standard ones relative to grpc-proto's root.
protoc \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" \
  --swift_out="$out" --swift_opt=Visibility=Public,FileNaming=DropPath \
  --grpc-swift_out="$out" --grpc-swift_opt=Visibility=Public,Server=true,Client=true,FileNaming=DropPath \
  -I "$here" -I "$grpc_proto" \
  onestep/sampler/v1/sampler.proto \
  inference/model_config.proto \
  inference/grpc_service.proto \
  grpc/health/v1/health.proto \
  grpc/reflection/v1/reflection.proto

# The serialized descriptors of every file the server offers, for the reflection service.
python3 "$here/embed_descriptors.py" "$out/Descriptors.swift" \
  onestep/sampler/v1/sampler.proto inference/model_config.proto inference/grpc_service.proto grpc/health/v1/health.proto \
  grpc/reflection/v1/reflection.proto grpc/reflection/v1alpha/reflection.proto -- -I "$here" -I "$grpc_proto"

if [ "$check" = 1 ]; then
  if diff -ru --exclude=README.md "$out_committed" "$out"; then
    echo "Sources/SamplerAPI is up to date"
  else
    echo "error: Sources/SamplerAPI differs from what Protos/generate.sh produces; run it and commit" >&2
    exit 1
  fi
else
  echo "generated into $out:" >&2
  ls "$out" >&2
fi
