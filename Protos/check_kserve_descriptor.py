#!/usr/bin/env python3
"""Checks Protos/inference/grpc_service.proto against the published KServe V2 / Triton descriptor.

The `tritonclient[grpc]` wheel carries the compiled FileDescriptorProto of Triton's
`grpc_service.proto` (package `inference`). This script compiles our .proto with grpcio-tools and
compares, for every message and method we define: package, names, field numbers, labels, types,
type names, oneof membership, proto3 `optional`, map entries and nested messages, and each rpc's
request/response types and streaming flags. Anything we define must match exactly; what we leave
out (ModelConfig, statistics, shared memory...) is listed, not an error.

Needs: `pip install "tritonclient[grpc]" grpcio-tools`. Exit status 0 when everything matches.
Usage: python Protos/check_kserve_descriptor.py [-v]
"""
import os
import sys
import tempfile

from google.protobuf import descriptor_pb2 as D
from grpc_tools import protoc
import grpc_tools
from tritonclient.grpc import service_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
OURS = "inference/grpc_service.proto"


def published():
    fd = D.FileDescriptorProto()
    service_pb2.DESCRIPTOR.CopyToProto(fd)
    return fd


def ours():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        rc = protoc.main(["protoc", f"-I{HERE}", f"-I{include}", f"--descriptor_set_out={out}", OURS])
        if rc != 0:
            sys.exit(f"protoc failed on {OURS} (exit {rc})")
        s = D.FileDescriptorSet()
        with open(out, "rb") as f:
            s.ParseFromString(f.read())
    return s.file[0]


def field_key(m, f):
    oneof = m.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") else None
    # json_name is left out: protoc derives it from the name, and the wheel's embedded copy omits it.
    return (f.name, f.number, f.label, f.type, f.type_name, oneof, f.proto3_optional, f.options.SerializeToString())


def compare_message(path, a, b, errors, verbose):
    """a: ours, b: published."""
    fa = {f.name: f for f in a.field}
    fb = {f.name: f for f in b.field}
    for name in sorted(set(fa) | set(fb)):
        if name not in fb:
            errors.append(f"{path}.{name}: not in the published definition")
        elif name not in fa:
            errors.append(f"{path}.{name}: missing (published as number {fb[name].number})")
        elif field_key(a, fa[name]) != field_key(b, fb[name]):
            errors.append(f"{path}.{name}: differs\n  ours:      {field_key(a, fa[name])}\n  published: {field_key(b, fb[name])}")
        elif verbose:
            print(f"ok {path}.{name} = {fa[name].number}")
    if a.options.SerializeToString() != b.options.SerializeToString():
        errors.append(f"{path}: message options differ")
    na = {n.name: n for n in a.nested_type}
    nb = {n.name: n for n in b.nested_type}
    for name in sorted(set(na) | set(nb)):
        if name not in na or name not in nb:
            errors.append(f"{path}.{name}: nested message only on one side")
        else:
            compare_message(f"{path}.{name}", na[name], nb[name], errors, verbose)
    if [e.name for e in a.enum_type] != [e.name for e in b.enum_type]:
        errors.append(f"{path}: nested enums differ")


def main():
    verbose = "-v" in sys.argv
    a, b = ours(), published()
    errors = []
    if a.package != b.package:
        errors.append(f"package: ours {a.package!r}, published {b.package!r}")
    if a.syntax != b.syntax:
        errors.append(f"syntax: ours {a.syntax!r}, published {b.syntax!r}")
    mb = {m.name: m for m in b.message_type}
    for m in a.message_type:
        if m.name not in mb:
            errors.append(f"message {m.name}: not in the published definition")
        else:
            compare_message(m.name, m, mb[m.name], errors, verbose)
    sb = {s.name: s for s in b.service}
    for s in a.service:
        if s.name not in sb:
            errors.append(f"service {s.name}: not in the published definition")
            continue
        pub = {r.name: r for r in sb[s.name].method}
        for r in s.method:
            p = pub.get(r.name)
            key = lambda x: (x.input_type, x.output_type, x.client_streaming, x.server_streaming)
            if p is None:
                errors.append(f"rpc {s.name}.{r.name}: not in the published definition")
            elif key(r) != key(p):
                errors.append(f"rpc {s.name}.{r.name}: ours {key(r)}, published {key(p)}")
            elif verbose:
                print(f"ok rpc {b.package}.{s.name}/{r.name}")
        left = sorted(set(pub) - {r.name for r in s.method})
        print(f"{s.name}: {len(s.method)} methods match; not offered: {', '.join(left)}")
    left = sorted(set(mb) - {m.name for m in a.message_type})
    print(f"{len(a.message_type)} messages match; not used: {len(left)} ({', '.join(left)})")
    if errors:
        print("\n".join(errors))
        print(f"{len(errors)} differences from the published descriptor")
        sys.exit(1)
    print("grpc_service.proto matches the published descriptor")


if __name__ == "__main__":
    main()
