#!/usr/bin/env python3
"""KServe V2 REST of a running `onestep serve`, through Triton's unmodified tritonclient.http.

Checks live/ready, server and model metadata, the model config, inference with JSON tensors and
with the binary tensor data extension (binary inputs and outputs), and that every sample is
bitwise equal to what tritonclient.grpc gets from the same daemon for the same seeds.

Usage: http_test.py --http 127.0.0.1:8000 --grpc 127.0.0.1:8001 --model img [--token T]
Exits 0 when every check passes; prints one line per check.
"""
import argparse
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

failures = 0


def check(ok, what, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + what + ("" if ok or not detail else f": {detail}"))
    if not ok:
        failures += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", required=True)
    ap.add_argument("--grpc", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--token")
    a = ap.parse_args()
    # Lower case: gRPC metadata keys must be (HTTP does not mind).
    headers = {"authorization": f"Bearer {a.token}"} if a.token else None

    h = httpclient.InferenceServerClient(url=a.http)
    g = grpcclient.InferenceServerClient(url=a.grpc)
    check(h.is_server_live(headers=headers), "server live")
    check(h.is_server_ready(headers=headers), "server ready")
    check(h.is_model_ready(a.model, headers=headers), f"model {a.model} ready")
    check(not h.is_model_ready("no-such-model", headers=headers), "an unknown model is not ready")

    meta = h.get_server_metadata(headers=headers)
    check(meta["name"] == "onestep" and "binary_tensor_data" in meta["extensions"], "server metadata", meta)
    mm = h.get_model_metadata(a.model, headers=headers)
    shape = mm["outputs"][0]["shape"]
    check(mm["name"] == a.model and mm["inputs"][0] == {"name": "seed", "datatype": "INT64", "shape": [-1]},
          "model metadata: input seed INT64 [-1]", mm)
    check(mm["outputs"][0]["name"] == "sample" and mm["outputs"][0]["datatype"] == "FP32" and shape[0] == -1,
          "model metadata: output sample FP32 [-1, ...]", mm)
    cfg = h.get_model_config(a.model, headers=headers)
    check(cfg.get("name") == a.model and int(cfg.get("max_batch_size", 0)) > 0, "model config", cfg)

    seeds = np.array([0, 7, 2**63 - 1, -5, 123456789012345], dtype=np.int64)

    def http_infer(binary_in, binary_out):
        inp = httpclient.InferInput("seed", [len(seeds)], "INT64")
        inp.set_data_from_numpy(seeds, binary_data=binary_in)
        outs = [httpclient.InferRequestedOutput("sample", binary_data=binary_out),
                httpclient.InferRequestedOutput("seed", binary_data=binary_out)]
        return h.infer(a.model, [inp], outputs=outs, request_id="r1", headers=headers)

    gi = grpcclient.InferInput("seed", [len(seeds)], "INT64")
    gi.set_data_from_numpy(seeds)
    ref = g.infer(a.model, [gi], headers=headers).as_numpy("sample")
    check(ref.shape == (len(seeds),) + tuple(shape[1:]), "gRPC reference samples", ref.shape)
    for binary_in in (False, True):
        for binary_out in (False, True):
            r = http_infer(binary_in, binary_out)
            s = r.as_numpy("sample")
            what = f"infer ({'binary' if binary_in else 'JSON'} input, {'binary' if binary_out else 'JSON'} outputs)"
            check(s is not None and s.dtype == np.float32 and s.shape == ref.shape, what + ": shape and dtype",
                  None if s is None else (s.dtype, s.shape))
            check(s is not None and s.tobytes() == ref.tobytes(), what + ": samples bitwise equal to gRPC's")
            check(np.array_equal(r.as_numpy("seed"), seeds), what + ": seeds echoed")
            check(r.get_response()["id"] == "r1" and r.get_response()["model_name"] == a.model, what + ": id, model")

    # No outputs named: tritonclient asks for binary_data_output; every output comes back, binary.
    inp = httpclient.InferInput("seed", [len(seeds)], "INT64")
    inp.set_data_from_numpy(seeds)
    r = h.infer(a.model, [inp], headers=headers)
    check(r.as_numpy("sample").tobytes() == ref.tobytes() and r.as_numpy("seed") is not None,
          "infer with default outputs (binary)")

    # Errors come back as exceptions with the server's message.
    bad = httpclient.InferInput("seed", [2], "FP32")
    bad.set_data_from_numpy(np.array([1, 2], dtype=np.float32))
    try:
        h.infer(a.model, [bad], headers=headers)
        check(False, "a wrong datatype is refused")
    except InferenceServerException as e:
        check("INT64" in str(e), "a wrong datatype is refused with the reason", str(e))
    try:
        h.infer("no-such-model", [inp], headers=headers)
        check(False, "an unknown model is refused")
    except InferenceServerException as e:
        check("no-such-model" in str(e), "an unknown model is refused with its name", str(e))
    check(h.is_server_ready(headers=headers), "still ready after the errors")
    print("http_test:", "ok" if failures == 0 else f"{failures} failed")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
