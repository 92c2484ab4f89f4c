#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/*.swift with swiftc directly (not SwiftPM), so a fuzz build
# never touches the package's .build/{debug,release}. Usage:
#   fuzz/build.sh [OUT_DIR]            (default .build/fuzz)
# Environment: SANITIZE (default "fuzzer,address"; "fuzzer" alone is faster to build and run),
#   SWIFTC (default swiftc), OPT (default -O), TARGETS (default: every fuzz/*.swift),
#   PROTOBUF_SRC (default .build/checkouts/swift-protobuf/Sources/SwiftProtobuf; `swift package resolve`
#   fetches it; the `v2`/`sampler` targets are skipped with a warning when it is missing).
# Idempotent: a module is recompiled only when one of its sources (or the flags) changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${1:-.build/fuzz}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
SWIFTC="${SWIFTC:-swiftc}"
SANITIZE="${SANITIZE:-fuzzer,address}"
OPT="${OPT:--O}"
PROTOBUF_SRC="${PROTOBUF_SRC:-$ROOT/.build/checkouts/swift-protobuf/Sources/SwiftProtobuf}"

echo "== $("$SWIFTC" --version 2>&1 | head -1)"
echo "== sanitizers: $SANITIZE, optimisation: $OPT, out: $OUT"

# -sanitize=fuzzer must be supported (Swift on Linux; not Apple's Xcode toolchains).
probe="$OUT/.probe"
mkdir -p "$probe"
cat >"$probe/p.swift" <<'SW'
@_cdecl("LLVMFuzzerTestOneInput") public func fuzz(_ d: UnsafePointer<UInt8>, _ n: Int) -> CInt { 0 }
SW
if ! "$SWIFTC" -parse-as-library -sanitize="$SANITIZE" "$probe/p.swift" -o "$probe/p" >"$probe/log" 2>&1; then
    echo "error: this toolchain cannot build with -sanitize=$SANITIZE:" >&2
    sed 's/^/  /' "$probe/log" >&2
    echo "(libFuzzer ships with the swift.org Linux toolchains; try SANITIZE=fuzzer)" >&2
    exit 2
fi

FLAGS=(-sanitize="$SANITIZE" $OPT -g -parse-as-library -swift-version 6 -I "$OUT/modules"
       -Xcc -fmodule-map-file="$ROOT/Sources/COpenBLAS/module.modulemap"
       -Xcc -fmodule-map-file="$ROOT/Sources/CPNG/module.modulemap"
       -Xcc -fmodule-map-file="$ROOT/Sources/CDNNL/module.modulemap"
       -Xcc -fmodule-map-file="$ROOT/Sources/CKernels/include/module.modulemap")
STAMP_FLAGS="$SWIFTC|${FLAGS[*]}"
mkdir -p "$OUT/modules" "$OUT/obj"

# build_module NAME EXTRA_FLAGS... -- SOURCES...
build_module() {
    local name="$1"; shift
    local extra=()
    while [ "$1" != "--" ]; do extra+=("$1"); shift; done
    shift
    local stamp="$OUT/obj/$name.stamp"
    local sum
    sum="$( { echo "$STAMP_FLAGS|${extra[*]}"; cat "$@"; for d in "${DEPS[@]:-}"; do [ -n "$d" ] && cat "$OUT/obj/$d.stamp" 2>/dev/null || true; done; } | sha256sum | cut -c1-64)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && [ -f "$OUT/obj/$name.o" ]; then
        echo "-- $name: up to date"; return
    fi
    echo "-- $name: compiling $# files"
    local t0=$SECONDS
    "$SWIFTC" "${FLAGS[@]}" "${extra[@]}" -module-name "$name" -wmo \
        -emit-module -emit-module-path "$OUT/modules/$name.swiftmodule" \
        -c -o "$OUT/obj/$name.o" "$@"
    echo "$sum" >"$stamp"
    echo "   $name: $((SECONDS - t0)) s"
}

# build_c NAME SOURCES...: the C target's objects (clang from the same toolchain), one per source.
CLANG="${CLANG:-$(dirname "$(command -v "$SWIFTC")")/clang}"
C_OBJS=()
build_c() {
    local name="$1"; shift
    local stamp="$OUT/obj/$name.stamp"
    local sum
    sum="$( { echo "$CLANG|$OPT"; cat "$@" "Sources/$name"/*.h "Sources/$name"/include/*; } | sha256sum | cut -c1-64)"
    local objs=()
    for src in "$@"; do objs+=("$OUT/obj/$name-$(basename "$src" .c).o"); done
    C_OBJS+=("${objs[@]}")
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then echo "-- $name (C): up to date"; return; fi
    echo "-- $name (C): compiling $# files"
    for src in "$@"; do
        "$CLANG" -O2 -g -fPIC -I "Sources/$name/include" -c "$src" -o "$OUT/obj/$name-$(basename "$src" .c).o"
    done
    echo "$sum" >"$stamp"
}

shopt -s nullglob
build_c CKernels Sources/CKernels/*.c
DEPS=(CKernels);         build_module TensorCore -- Sources/TensorCore/*.swift
DEPS=();                 build_module OneDNN -- Sources/OneDNN/*.swift
DEPS=(TensorCore OneDNN CKernels); build_module NN -- Sources/NN/*.swift
DEPS=(NN TensorCore);     build_module Diffusion -- Sources/Diffusion/*.swift
CORE_OBJS=("${C_OBJS[@]}" "$OUT/obj/TensorCore.o" "$OUT/obj/OneDNN.o" "$OUT/obj/NN.o" "$OUT/obj/Diffusion.o")
LIBS=(-lopenblas -lpng16 -ldnnl -lgomp)

HAVE_PROTO=0
if [ -d "$PROTOBUF_SRC" ]; then
    HAVE_PROTO=1
    DEPS=(); build_module SwiftProtobuf -enable-upcoming-feature ExistentialAny -package-name swift_protobuf -- "$PROTOBUF_SRC"/*.swift
    # Only the generated messages (*.pb.swift): the *.grpc.swift stubs need GRPCCore.
    DEPS=(SwiftProtobuf); build_module SamplerAPI -- Sources/SamplerAPI/*.pb.swift
    # The services' request checks: written without gRPC so that they compile on their own.
    DEPS=(Diffusion SwiftProtobuf SamplerAPI); build_module ServingChecks -- Sources/SamplerServer/ServerError.swift Sources/SamplerServer/Services/RequestChecks.swift
fi

TARGETS="${TARGETS:-$(for f in fuzz/*.swift; do basename "$f" .swift; done)}"
for t in $TARGETS; do
    src="fuzz/$t.swift"
    [ -f "$src" ] || { echo "error: no $src" >&2; exit 1; }
    objs=("${CORE_OBJS[@]}")
    if grep -q '^import SamplerAPI' "$src"; then
        if [ $HAVE_PROTO = 0 ]; then echo "warning: skipping $t (no swift-protobuf at $PROTOBUF_SRC)" >&2; continue; fi
        objs+=("$OUT/obj/SwiftProtobuf.o" "$OUT/obj/SamplerAPI.o")
        grep -q '^import ServingChecks' "$src" && objs+=("$OUT/obj/ServingChecks.o")
    fi
    sum="$( { echo "$STAMP_FLAGS"; cat "$src"; cat "$OUT"/obj/*.stamp; } | sha256sum | cut -c1-64)"
    if [ -x "$OUT/$t" ] && [ -f "$OUT/obj/fuzz-$t.stamp2" ] && [ "$(cat "$OUT/obj/fuzz-$t.stamp2")" = "$sum" ]; then
        echo "-- fuzzer $t: up to date"; continue
    fi
    echo "-- fuzzer $t: linking"
    # ld.gold warns about every ASan helper symbol ("Cannot export local symbol"): harmless, hidden.
    if ! "$SWIFTC" "${FLAGS[@]}" -module-name "fuzz_$t" "$src" "${objs[@]}" "${LIBS[@]}" -o "$OUT/$t" >"$OUT/obj/link-$t.log" 2>&1; then
        cat "$OUT/obj/link-$t.log" >&2; echo "error: linking $t failed" >&2; exit 1
    fi
    grep -v 'Cannot export local symbol' "$OUT/obj/link-$t.log" || true
    echo "$sum" >"$OUT/obj/fuzz-$t.stamp2"
done
echo "== fuzzers in $OUT: $(cd "$OUT" && for t in $TARGETS; do [ -x "$t" ] && printf '%s ' "$t"; done)"
