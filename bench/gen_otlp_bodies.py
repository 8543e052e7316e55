#!/usr/bin/env python3
"""Writes N OTLP protobuf request bodies of 100 spans each (10 traces of 10 spans, with order.id,
http and db attributes, a few errors), for bench/otlp_ingest.sh.
usage: gen_otlp_bodies.py N OUTDIR   (pip install opentelemetry-proto)"""
import os, random, sys
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

n, out = int(sys.argv[1]), sys.argv[2]
os.makedirs(out, exist_ok=True)
rnd = random.Random(1)
def kv(k, **v): return KeyValue(key=k, value=AnyValue(**v))
t0 = 1795442400000000000
for b in range(n):
    spans = []
    for t in range(10):
        trace = rnd.getrandbits(128).to_bytes(16, "big")
        order = f"SO-{b:05d}-{t}"
        root = rnd.getrandbits(64).to_bytes(8, "big")
        for i in range(10):
            sid = root if i == 0 else rnd.getrandbits(64).to_bytes(8, "big")
            start = t0 + b * 1_000_000_000 + t * 10_000_000 + i * 1_000_000
            spans.append(Span(trace_id=trace, span_id=sid, parent_span_id=b"" if i == 0 else root,
                              name=["order.fulfil", "erp.credit_check", "allocation.allocate", "wms.release", "db.query"][i % 5],
                              kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=start, end_time_unix_nano=start + rnd.randrange(100_000, 50_000_000),
                              attributes=[kv("order.id", string_value=order), kv("http.method", string_value="POST"),
                                          kv("http.status_code", int_value=200)],
                              status=Status(code=Status.STATUS_CODE_ERROR if rnd.random() < 0.02 else Status.STATUS_CODE_OK)))
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [kv("service.name", string_value="orchestrator")]},
        scope_spans=[ScopeSpans(scope={"name": "bench"}, spans=spans)])])
    open(os.path.join(out, f"body-{b}.pb"), "wb").write(req.SerializeToString())
