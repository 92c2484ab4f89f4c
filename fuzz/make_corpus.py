#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets under fuzz/corpus/<target>/ (standard library only).

  fuzz/make_corpus.py                      # metadata, protobuf and hostile safetensors seeds
  fuzz/make_corpus.py --from-dump DIR      # also: valid snapshots that `snapshot_meta` wrote to DIR
                                           #       (ONESTEP_FUZZ_DUMP=DIR), copied as snapshot/safetensors seeds

Seeds derived from the bundled checkpoints (models/serve/*/*/model.safetensors, 4-7 MB each, too
big to keep) are their real headers with the tensors cut to empty shapes, so the JSON, names and
metadata are the shipped ones and the files stay small.
"""
import glob, json, os, shutil, struct, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(header, data=b""):
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


# ---- snapshot_meta: key=value metadata (the harness synthesizes the planned tensors) -----------
MLP = '{"dim":2,"width":16,"blocks":2,"noise_channels":8,"num_classes":0}'
MLP_COND = '{"dim":4,"width":8,"blocks":1,"noise_channels":4,"num_classes":3}'
UNET = ('{"blocks_per_level":1,"channels":[8,16],"emb_channels":16,"in_channels":1,'
        '"noise_channels":8,"num_classes":0,"out_channels":1,"resolution":8}')
UNET_COND = ('{"blocks_per_level":1,"channels":[4],"emb_channels":8,"in_channels":3,'
             '"noise_channels":4,"num_classes":10,"out_channels":3,"resolution":4}')
SAMPLER = '{"rho":7,"sigma_max":80,"sigma_min":0.002,"solver":"heun","steps":18}'
PROV = '{"run":"fuzz","images_seen":"1000","best_of_rule":"best","nested":{"a":[1,2.5,true,null]}}'

def meta(**kv):
    return "".join(f"{k}={v}\n" for k, v in kv.items())

base_gen = dict(format="onestep-1", kind="generator", sigma_data="0.5", sigma_init="2.5", provenance=PROV)
base_teacher = dict(format="onestep-1", kind="teacher", sigma_data="0.5", sampler=SAMPLER)
metas = {
    "mlp-generator": meta(arch="mlp", config=MLP, **base_gen),
    "mlp-teacher-cond": meta(arch="mlp", config=MLP_COND, **base_teacher),
    "unet-teacher": meta(arch="unet", config=UNET, **base_teacher),
    "unet-generator-cond": meta(arch="unet", config=UNET_COND, **base_gen),
    "mlp-generator-ratio-mlp": meta(arch="mlp", config=MLP, classifier_arch="ratio-mlp",
                                    classifier_config='{"dim":2,"width":8,"blocks":1,"noise_channels":4,"num_classes":0,"sigma_data":0.5}',
                                    **base_gen),
    "unet-generator-ratio-unet": meta(arch="unet", config=UNET, classifier_arch="ratio-unet",
                                      classifier_config='{"sigma_data":0.5,"unet":' + UNET + '}', **base_gen),
    "unet-generator-extra-part": meta(arch="unet", config=UNET, extra_arch="opaque", extra_config="{}", **base_gen)
                                 + "@tensor=extra.w:2,3\n",
    # Hostile: at or past the ArchitectureLimits bounds, overflow bait, bad kinds/numbers.
    "hostile-unet-max": meta(arch="unet", config='{"blocks_per_level":64,"channels":[8192,8192,8192,8192,8192,8192,8192,8192],'
                             '"emb_channels":8192,"in_channels":64,"noise_channels":8192,"num_classes":100000,'
                             '"out_channels":64,"resolution":1024}', **base_teacher),
    "hostile-unet-overflow": meta(arch="unet", config='{"blocks_per_level":9223372036854775807,"channels":[-4,4611686018427387904],'
                                  '"emb_channels":-1,"in_channels":0,"noise_channels":3,"num_classes":-5,'
                                  '"out_channels":1,"resolution":9223372036854775807}', **base_teacher),
    "hostile-mlp-huge": meta(arch="mlp", config='{"dim":1048576,"width":8192,"blocks":64,"noise_channels":8192,"num_classes":100000}',
                             **base_gen),
    "hostile-sampler": meta(arch="mlp", config=MLP, format="onestep-1", kind="teacher", sigma_data="nan",
                            sampler='{"rho":-1e39,"sigma_max":1e400,"sigma_min":-0.0,"solver":"euler","steps":9223372036854775807}'),
    "hostile-parts": meta(arch="mlp", config=MLP, classifier_arch="ratio-unet",
                          classifier_config='{"sigma_data":0,"unet":{"channels":[]}}', _arch="x", _config="{}",
                          Classifier_arch="ratio-mlp", Classifier_config=MLP, **base_gen) + "@drop=net.out.weight\n@shape=blocks.0.affine.weight:0,16\n",
}
for name, text in metas.items():
    put("snapshot_meta", name + ".txt", text)

# ---- safetensors / snapshot: hostile files and headers of the bundled checkpoints --------------
hostile = {
    "empty": b"",
    "short-length": b"\x10\x00\x00",
    "length-huge": struct.pack("<Q", 2**64 - 1) + b"{}",
    "length-past-end": struct.pack("<Q", 1000) + b"{}",
    "not-utf8": struct.pack("<Q", 4) + b"\xff\xfe{}",
    "json-array": struct.pack("<Q", 2) + b"[]",
    "empty-object": safetensors({}),
    "meta-non-string": safetensors({"__metadata__": {"a": 1}}),
    "shape-overflow": safetensors({"t": {"dtype": "F32", "shape": [2**62, 2**62, 0], "data_offsets": [0, 0]}}),
    "shape-overflow-zero-first": safetensors({"t": {"dtype": "F32", "shape": [0, 2**62, 2**62], "data_offsets": [0, 0]}}),
    "offsets-negative": safetensors({"t": {"dtype": "U8", "shape": [1], "data_offsets": [-1, 0]}}, b"\x00"),
    "offsets-float": safetensors({"t": {"dtype": "U8", "shape": [1], "data_offsets": [0.0, 1e300]}}, b"\x00"),
    "offsets-bool": safetensors({"t": {"dtype": "U8", "shape": [True], "data_offsets": [False, True]}}, b"\x00"),
    "overlap": safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                            "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}, b"\x00" * 8),
    "all-dtypes": safetensors({d: {"dtype": d, "shape": [2], "data_offsets": [o, o + 2 * s]}
                               for d, s, o in [("F64", 8, 0), ("F32", 4, 16), ("F16", 2, 24), ("BF16", 2, 28),
                                               ("I64", 8, 32), ("I32", 4, 48), ("I16", 2, 56), ("I8", 1, 60),
                                               ("U64", 8, 62), ("U32", 4, 78), ("U16", 2, 86), ("U8", 1, 90),
                                               ("BOOL", 1, 92)]} | {"__metadata__": {"k": "v"}},
                              bytes(range(94))),
    "deep-json": struct.pack("<Q", 20000) + b"[" * 10000 + b"]" * 10000,
    "bad-dtype": safetensors({"t": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}, b"\x00"),
}
for name, data in hostile.items():
    put("safetensors", name + ".safetensors", data)
    if name in ("empty-object", "all-dtypes", "shape-overflow-zero-first"):
        put("snapshot", name + ".safetensors", data)

for path in sorted(glob.glob(os.path.join(ROOT, "models", "serve", "*", "*", "model.safetensors"))):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    # Same names, metadata and dtypes; every tensor cut to an empty shape, so no data.
    for k, v in header.items():
        if k != "__metadata__":
            v["shape"] = [0] + v["shape"][1:]
            v["data_offsets"] = [0, 0]
    model, version = path.split(os.sep)[-3:-1]
    data = safetensors(header)
    put("snapshot", f"bundled-{model}-{version}-emptied.safetensors", data)
    put("safetensors", f"bundled-{model}-{version}-emptied.safetensors", data)

# ---- protobuf requests (hand-encoded wire format) ----------------------------------------------
def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)

def field(num, wt, payload):
    key = varint(num << 3 | wt)
    if wt == 0:
        return key + varint(payload)
    if wt == 2:
        return key + varint(len(payload)) + payload
    if wt == 1 or wt == 5:
        return key + payload
    raise ValueError(wt)

def s(num, text):
    return field(num, 2, text.encode() if isinstance(text, str) else text)

def packed(num, values):
    return field(num, 2, b"".join(varint(v) for v in values))

def param_int(v):
    return field(2, 0, v)

def map_entry(num, key, value_msg):
    return field(num, 2, s(1, key) + field(2, 2, value_msg))

seed_input = s(1, "seed") + s(2, "INT64") + packed(3, [4]) + field(5, 2, packed(3, [1, 2, 3, 2**63]))
label_input = s(1, "label") + s(2, "INT64") + packed(3, [4, 1]) + map_entry(4, "binary_data", field(1, 0, 1))
v2 = {
    "infer-typed": s(1, "mnist-onestep") + s(2, "2") + s(3, "req-1") + field(5, 2, seed_input) + field(5, 2, label_input)
                   + field(6, 2, s(1, "sample") + map_entry(2, "binary_data", field(1, 0, 1)))
                   + map_entry(4, "priority", param_int(1)) + map_entry(4, "timeout", param_int(2**63 - 1)),
    "infer-raw": s(1, "mnist-teacher") + field(5, 2, s(1, "seed") + s(2, "INT64") + packed(3, [2]))
                 + s(7, struct.pack("<qq", 7, -1)) + field(6, 2, s(1, "seed")),
    "infer-floats": s(1, "m") + field(5, 2, s(1, "x") + s(2, "FP32") + packed(3, [2])
                                     + field(5, 2, field(6, 2, struct.pack("<ff", float("nan"), -0.0))
                                             + field(7, 2, struct.pack("<d", float("inf")))
                                             + s(8, b"\x00\xff"))),
    "infer-params": s(1, "m") + map_entry(4, "d", field(4, 1, struct.pack("<d", float("nan"))))
                    + map_entry(4, "s", s(3, "x" * 40)) + map_entry(4, "u", field(5, 0, 2**64 - 1))
                    + map_entry(4, "b", field(1, 0, 2)),
    "unknown-and-group": s(1, "m") + field(99, 0, 5) + varint(100 << 3 | 3) + field(1, 0, 1) + varint(100 << 3 | 4),
    "truncated": s(1, "model-name")[:-3],
    "deep-nesting": (field(5, 2, b"") * 1) + b"\x2a\x7f" + b"\x2a\x7d" * 40,
}
for name, data in v2.items():
    put("requests", name + ".pb", data)

sampler = {
    "sample-count": s(1, "mnist-onestep") + field(2, 0, 2) + field(4, 0, 16) + field(5, 0, 42) + field(6, 0, 100)
                    + field(9, 0, 3) + field(10, 0, 4) + field(11, 0, 1),
    "sample-seeds": s(1, "m") + s(3, "stable") + packed(7, [1, 2, 2**64 - 1]) + packed(8, [0, 9, 2**32 - 1]),
    "sample-unpacked": s(1, "m") + field(7, 0, 5) + field(7, 0, 6) + field(8, 0, 2**64 - 1),
    "sample-bad-enums": s(1, "m") + field(9, 0, 2**31) + field(11, 0, 2**64 - 1) + field(4, 0, 2**40),
    "model-info": s(1, "mnist-teacher") + field(2, 0, 2**63),
    "unknown-fields": field(1000, 2, b"x" * 10) + field(15, 5, b"\x00\x00\x80\x7f") + field(16, 1, b"\xff" * 8),
}
for name, data in sampler.items():
    put("requests", name + ".pb", data)

# ---- valid snapshots written by snapshot_meta (ONESTEP_FUZZ_DUMP) -------------------------------
if len(sys.argv) == 3 and sys.argv[1] == "--from-dump":
    for p in sorted(glob.glob(os.path.join(sys.argv[2], "*.safetensors"))):
        if os.path.getsize(p) <= 200_000:
            for t in ("snapshot", "safetensors"):
                shutil.copy(p, os.path.join(CORPUS, t, "valid-" + os.path.basename(p)))

total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(CORPUS, "*", "*")))
print(f"corpus: {sum(1 for _ in glob.glob(os.path.join(CORPUS, '*', '*')))} files, {total} bytes")
