#!/usr/bin/env python3
"""Ask a running `onestep serve` for samples and save one PNG per sample.

Uses the committed stubs in generated/ (regenerate with ./generate_stubs.sh); needs only grpcio
and protobuf (`pip install grpcio protobuf`). The daemon encodes the PNGs (format PNG), so no
imaging library is needed here.

    python3 sample_pngs.py --server 127.0.0.1:8001 --model mnist-onestep --count 8 --seed 1 --out samples/
    python3 sample_pngs.py ... --label stable          # a version label instead of the newest
    ONESTEP_TOKEN=... python3 sample_pngs.py ...        # if the daemon wants a bearer token

Sample k of seed s is the same image whatever else the server was doing: the file names carry
(model, version, seed, index), so any image can be regenerated later.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated"))

import grpc  # noqa: E402
from onestep.sampler.v1 import sampler_pb2 as pb  # noqa: E402
from onestep.sampler.v1 import sampler_pb2_grpc as rpc  # noqa: E402

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


def sample_with_retries(stub, request, metadata, timeout, attempts=5):
    """Sample(), retried on UNAVAILABLE / RESOURCE_EXHAUSTED after the server's retry hint."""
    delay = 0.05
    for attempt in range(1, attempts + 1):
        try:
            return stub.Sample(request, metadata=metadata, timeout=timeout)
        except grpc.RpcError as e:
            if e.code() not in RETRYABLE or attempt == attempts:
                raise
            hint = dict(e.trailing_metadata() or ()).get("retry-after-ms")
            time.sleep(int(hint) / 1000 if hint else delay)
            delay = min(delay * 2, 5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", default="127.0.0.1:8001")
    ap.add_argument("--model", required=True)
    ap.add_argument("--version", type=int)
    ap.add_argument("--label")
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labels", type=int, nargs="*", default=[], help="class labels: one for all, or one per sample")
    ap.add_argument("--out", default="samples")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()

    request = pb.SampleRequest(model=args.model, count=args.count, seed=args.seed, labels=args.labels,
                               format=pb.OUTPUT_FORMAT_PNG)
    if args.version is not None:
        request.version = args.version
    elif args.label:
        request.label = args.label
    token = os.environ.get("ONESTEP_TOKEN")
    metadata = [("authorization", f"Bearer {token}")] if token else None

    with grpc.insecure_channel(args.server, options=[("grpc.max_receive_message_length", 256 << 20)]) as channel:
        stub = rpc.SamplerStub(channel)
        try:
            r = sample_with_retries(stub, request, metadata, args.timeout)
        except grpc.RpcError as e:
            sys.exit(f"{e.code().name}: {e.details()}")
    os.makedirs(args.out, exist_ok=True)
    for png, sid in zip(r.images, r.ids):
        path = os.path.join(args.out, f"{r.model}-v{r.model_version}-s{sid.seed}-i{sid.index}.png")
        with open(path, "wb") as f:
            f.write(png)
    print(f"wrote {len(r.images)} PNGs of shape {list(r.shape)[1:]} to {args.out}/ "
          f"(model {r.model} version {r.model_version}, queue {r.queue_us} us, compute {r.compute_us} us)")


if __name__ == "__main__":
    main()
