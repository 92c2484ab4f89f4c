#!/usr/bin/env python3
"""Read a labelled data set written by `onestep generate --format idx` like any MNIST loader would.

`generate` writes IDX chunks side by side: idx/samples-FIRST-LAST.idx (uint8 [n, H, W], MNIST's
layout; float32 [n, D] for vector models) and idx/labels-FIRST-LAST.idx (uint8 [n]) for conditional
models. This reader uses nothing but the IDX format (big-endian header: two zero bytes, a type code,
the number of dimensions, then one uint32 per dimension), concatenates the chunks in seed order and
either prints a JSON summary or, with --merge, writes MNIST's four-file names

    OUT/train-images-idx3-ubyte  OUT/train-labels-idx1-ubyte

which torchvision-style and hand-written MNIST loaders read unchanged.

    python3 tools/read_idx.py runs/generated            # summary: count, shape, class histogram, first labels
    python3 tools/read_idx.py runs/generated --all-labels  # the summary with every label
    python3 tools/read_idx.py runs/generated --merge out/mnist-synthetic
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys

import numpy as np

TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
         0x0E: np.dtype(">f8")}
CODES = {np.dtype(np.uint8): 0x08}


def read_idx(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in TYPES:
        raise ValueError(f"{path}: not an IDX file")
    dims = data[3]
    shape = struct.unpack(f">{dims}I", data[4:4 + 4 * dims])
    dtype = np.dtype(TYPES[data[2]])
    body = np.frombuffer(data, dtype=dtype, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {body.size} values for shape {shape}")
    return body.reshape(shape)


def write_idx(path: str, array: np.ndarray) -> None:
    code = CODES[array.dtype]
    with open(path, "wb") as f:
        f.write(bytes([0, 0, code, array.ndim]))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.tobytes())


FIRST = 20  # labels listed in the summary without --all-labels

CHUNK = re.compile(r"^(samples|labels)-(\d+)-(\d+)\.idx$")


def load(folder: str) -> tuple[np.ndarray, np.ndarray | None]:
    """All chunks of a generate output folder (or its idx/ subfolder), in seed order."""
    idx = os.path.join(folder, "idx") if os.path.isdir(os.path.join(folder, "idx")) else folder
    chunks: dict[str, list[tuple[int, str]]] = {"samples": [], "labels": []}
    for name in os.listdir(idx):
        m = CHUNK.match(name)
        if m:
            chunks[m.group(1)].append((int(m.group(2)), os.path.join(idx, name)))
    if not chunks["samples"]:
        raise SystemExit(f"{idx}: no samples-*.idx chunks (was it written by `onestep generate --format idx`?)")
    images = np.concatenate([read_idx(p) for _, p in sorted(chunks["samples"])])
    labels = None
    if chunks["labels"]:
        if [s for s, _ in sorted(chunks["labels"])] != [s for s, _ in sorted(chunks["samples"])]:
            raise SystemExit(f"{idx}: the labels chunks do not match the samples chunks")
        labels = np.concatenate([read_idx(p) for _, p in sorted(chunks["labels"])])
    return images, labels


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="output folder of `onestep generate --format idx`")
    ap.add_argument("--all-labels", action="store_true", help="list every label (else the first %d)" % FIRST)
    ap.add_argument("--merge", metavar="OUT", help="write OUT/train-images-idx3-ubyte and train-labels-idx1-ubyte")
    args = ap.parse_args()
    images, labels = load(args.folder)
    summary = {"count": int(images.shape[0]), "shape": list(images.shape[1:]), "dtype": str(images.dtype)}
    if labels is not None:
        if args.all_labels:
            summary["labels"] = labels.astype(int).tolist()
        else:
            summary["first_labels"] = labels[:FIRST].astype(int).tolist()
        summary["histogram"] = np.bincount(labels.astype(int)).tolist()
    if args.merge:
        if images.dtype != np.uint8 or images.ndim != 3 or labels is None:
            raise SystemExit("--merge needs a labelled set of uint8 images [n, H, W] (a conditional image model)")
        os.makedirs(args.merge, exist_ok=True)
        write_idx(os.path.join(args.merge, "train-images-idx3-ubyte"), images)
        write_idx(os.path.join(args.merge, "train-labels-idx1-ubyte"), labels.astype(np.uint8))
        summary["merged"] = args.merge
    json.dump(summary, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
