#!/usr/bin/env python3
"""End-to-end checks of a running `onestep serve` from Python.

The acceptance client for the KServe V2 API is Triton's unmodified `tritonclient[grpc]`; the native
Sampler API is called through stubs generated at run time from Protos/ with grpcio-tools; health is
called with hand-encoded protobuf (no extra package). Expects the repository the Swift test
`PythonEndToEndTests` writes: `img` (unconditional 1x8x8 images, version 1) and `vec` (2-D
vectors, version 3).

Usage: e2e_test.py --url 127.0.0.1:PORT --protos DIR [--metrics-port PORT]
Prints one line per check and a closing 'N passed, M failed'; exit status 1 on any failure.
"""
import argparse
import importlib
import os
import sys
import tempfile
import traceback

import grpc
import numpy as np
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def sampler_stubs(protos):
    """Compiles Protos/onestep/sampler/v1/sampler.proto into a temporary package and imports it."""
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="onestep-py-")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(["protoc", f"-I{protos}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
                      "onestep/sampler/v1/sampler.proto"])
    assert rc == 0, "protoc failed"
    sys.path.insert(0, out)
    pb = importlib.import_module("onestep.sampler.v1.sampler_pb2")
    rpc = importlib.import_module("onestep.sampler.v1.sampler_pb2_grpc")
    return pb, rpc


def infer(client, model, seeds, version=""):
    inp = triton.InferInput("seed", [len(seeds)], "INT64")
    inp.set_data_from_numpy(np.asarray(seeds, dtype=np.int64))
    return client.infer(model, [inp], model_version=version,
                        outputs=[triton.InferRequestedOutput("sample"), triton.InferRequestedOutput("seed")])


@check
def server_live_ready_metadata(ctx):
    c = ctx["triton"]
    assert c.is_server_live()
    assert c.is_server_ready()
    assert c.is_model_ready("img") and c.is_model_ready("vec", "3")
    assert not c.is_model_ready("vec", "99")
    meta = c.get_server_metadata()
    assert meta.name == "onestep" and "model_repository" in meta.extensions, meta


@check
def model_metadata(ctx):
    m = ctx["triton"].get_model_metadata("img")
    assert m.inputs[0].name == "seed" and m.inputs[0].datatype == "INT64"
    assert m.outputs[0].name == "sample" and list(m.outputs[0].shape) == [-1, 1, 8, 8], m
    assert list(m.versions) == ["1"]


@check
def infer_raw_contents_and_batch_invariance(ctx):
    c = ctx["triton"]
    r = infer(c, "img", [5, 6, 7, -3])
    x = r.as_numpy("sample")
    assert x.dtype == np.float32 and x.shape == (4, 1, 8, 8), x.shape
    assert np.all(np.isfinite(x))
    assert list(r.as_numpy("seed")) == [5, 6, 7, -3]
    resp = r.get_response()
    assert resp.model_version == "1"
    alone = infer(c, "img", [7]).as_numpy("sample")
    assert alone.tobytes() == x[2:3].tobytes(), "sample of seed 7 differs with its batch"
    v = infer(c, "vec", [1, 2]).as_numpy("sample")
    assert v.shape == (2, 2)


@check
def infer_typed_contents_with_wheel_stubs(ctx):
    stub = service_pb2_grpc.GRPCInferenceServiceStub(ctx["channel"])
    req = service_pb2.ModelInferRequest(model_name="img", id="typed-1")
    t = req.inputs.add(name="seed", datatype="INT64", shape=[2])
    t.contents.int64_contents.extend([5, 6])
    req.outputs.add(name="sample")
    resp = stub.ModelInfer(req)
    assert resp.id == "typed-1" and resp.model_version == "1"
    assert len(resp.raw_output_contents) == 0
    typed = np.asarray(resp.outputs[0].contents.fp32_contents, dtype=np.float32).reshape(2, 1, 8, 8)
    raw = infer(ctx["triton"], "img", [5, 6]).as_numpy("sample")
    assert typed.tobytes() == raw.tobytes()


@check
def infer_errors_have_statuses(ctx):
    c = ctx["triton"]
    cases = [
        (lambda: infer(c, "nope", [1]), "NOT_FOUND"),
        (lambda: infer(c, "img", [1], version="42"), "NOT_FOUND"),
    ]
    bad = triton.InferInput("seed", [2], "FP32")
    bad.set_data_from_numpy(np.asarray([1, 2], dtype=np.float32))
    cases.append((lambda: c.infer("img", [bad]), "INVALID_ARGUMENT"))
    for call, want in cases:
        try:
            call()
        except InferenceServerException as e:
            assert want in str(e.status()), (want, e.status(), e.message())
            assert e.message(), "an error needs a message"
        else:
            raise AssertionError(f"expected {want}")
    assert c.is_server_live(), "still serving after bad input"


@check
def model_config_and_statistics(ctx):
    """Triton's extensions: vec's config.json (max_batch_size 16, preferred [8], 3 ms, 1 instance)
    as ModelConfig, and ModelStatistics counting exactly what this check sends."""
    c = ctx["triton"]
    cfg = c.get_model_config("vec").config
    assert cfg.name == "vec" and cfg.backend == "onestep", cfg
    assert cfg.max_batch_size == 16, cfg.max_batch_size
    assert list(cfg.dynamic_batching.preferred_batch_size) == [8], cfg.dynamic_batching
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 3000, cfg.dynamic_batching
    assert [(g.kind, g.count) for g in cfg.instance_group] == [(2, 1)], cfg.instance_group  # KIND_CPU
    assert cfg.version_policy.HasField("latest") and cfg.version_policy.latest.num_versions == 1, cfg.version_policy
    assert [i.name for i in cfg.input] == ["seed"] and [o.name for o in cfg.output] == ["sample", "seed"], cfg
    assert list(cfg.output[0].dims) == [2], cfg.output[0]

    def stats():
        s = c.get_inference_statistics("vec").model_stats
        assert len(s) == 1 and s[0].name == "vec" and s[0].version == "3", s
        return s[0]
    before = stats()
    for k in range(3):
        infer(c, "vec", list(range(10 * k, 10 * k + 5)))
    after = stats()
    assert after.inference_count - before.inference_count == 15, (before, after)
    assert after.inference_stats.success.count - before.inference_stats.success.count == 3, after
    assert after.inference_stats.queue.count - before.inference_stats.queue.count == 3, after
    assert after.inference_stats.success.ns > before.inference_stats.success.ns, after
    assert 1 <= after.execution_count - before.execution_count <= 3, (before, after)
    samples = lambda s: sum(b.batch_size * b.compute_infer.count for b in s.batch_stats)
    assert samples(after) - samples(before) == 15, after.batch_stats
    assert after.last_inference > 0
    everything = c.get_inference_statistics("").model_stats
    assert {(m.name, m.version) for m in everything} == {("img", "1"), ("vec", "3")}, everything


@check
def reflection_v1alpha_with_grpcio_reflection(ctx):
    """The grpcio-reflection client (v1alpha, what Python tooling speaks) lists the services and
    resolves a method to its file."""
    from google.protobuf import descriptor_pool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
    db = ProtoReflectionDescriptorDatabase(ctx["channel"])
    services = set(db.get_services())
    assert {"onestep.sampler.v1.Sampler", "inference.GRPCInferenceService", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"} <= services, services
    pool = descriptor_pool.DescriptorPool(db)
    infer = pool.FindMethodByName("inference.GRPCInferenceService.ModelConfig")
    assert infer.output_type.fields_by_name["config"].message_type.full_name == "inference.ModelConfig"


@check
def repository_index_unload_load(ctx):
    c = ctx["triton"]
    idx = c.get_model_repository_index()
    states = {(m.name, m.version): m.state for m in idx.models}
    assert states[("img", "1")] == "READY" and states[("vec", "3")] == "READY", states
    c.unload_model("vec")
    assert not c.is_model_ready("vec")
    c.load_model("vec")
    assert c.is_model_ready("vec")


@check
def health_check_per_model(ctx):
    call = ctx["channel"].unary_unary("/grpc.health.v1.Health/Check")

    def status(service):
        body = service.encode()
        resp = call(b"\n" + bytes([len(body)]) + body if body else b"")
        return resp[1] if len(resp) >= 2 else 0   # field 1 varint; absent = UNKNOWN (0)
    assert status("") == 1, "SERVING"
    assert status("img") == 1
    try:
        status("nope")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
    else:
        raise AssertionError("unknown service must be NOT_FOUND")


@check
def sampler_unary_and_stream(ctx):
    pb, rpc = ctx["sampler"]
    s = rpc.SamplerStub(ctx["channel"])
    r = s.Sample(pb.SampleRequest(model="img", count=5, seed=42, first_index=2))
    assert r.model_version == 1 and list(r.shape) == [5, 1, 8, 8]
    assert [(i.seed, i.index) for i in r.ids] == [(42, k) for k in range(2, 7)]
    x = np.frombuffer(r.data, dtype="<f4").reshape(5, 1, 8, 8)
    parts = list(s.SampleStream(pb.SampleRequest(model="img", count=5, seed=42, first_index=2)))
    assert parts[-1].completed == 5 and parts[-1].total == 5
    y = np.concatenate([np.frombuffer(p.chunk.data, dtype="<f4") for p in parts]).reshape(5, 1, 8, 8)
    assert x.tobytes() == y.tobytes()
    png = s.Sample(pb.SampleRequest(model="img", seeds=[1, 2], format=pb.OUTPUT_FORMAT_PNG))
    assert len(png.images) == 2 and png.images[0][:4] == b"\x89PNG"
    try:
        s.Sample(pb.SampleRequest(model="img", count=0))
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and e.details()
    else:
        raise AssertionError("count 0 must be INVALID_ARGUMENT")


@check
def metrics_endpoint(ctx):
    """Prometheus text on GET /metrics, counting the samples served so far (runs last)."""
    if ctx["metrics_port"] < 0:
        return
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{ctx['metrics_port']}/metrics", timeout=10).read().decode()
    lines = [l for l in text.splitlines() if l.startswith("onestep_samples_total")]
    assert lines and any(float(l.split()[-1]) > 0 for l in lines), text[:2000]
    assert "onestep_queue_duration_seconds" in text and "onestep_compute_duration_seconds" in text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--metrics-port", type=int, default=-1)
    ap.add_argument("--protos", required=True)
    args = ap.parse_args()
    ctx = {
        "triton": triton.InferenceServerClient(url=args.url),
        "channel": grpc.insecure_channel(args.url),
        "sampler": sampler_stubs(args.protos),
        "metrics_port": args.metrics_port,
    }
    passed = failed = 0
    for fn in CHECKS:
        try:
            fn(ctx)
            print(f"ok   {fn.__name__}")
            passed += 1
        except Exception:
            print(f"FAIL {fn.__name__}")
            traceback.print_exc()
            failed += 1
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
