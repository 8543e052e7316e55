#!/usr/bin/env python3
"""Writes otlp-trace.pb, an ExportTraceServiceRequest with every attribute value type, a parent,
an error status and resource attributes, using the official opentelemetry-proto Python classes.
usage: pip install opentelemetry-proto && python3 make_otlp_fixture.py"""
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

def kv(k, **v): return KeyValue(key=k, value=AnyValue(**v))

req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
    resource={"attributes": [kv("service.name", string_value="allocation"), kv("host.cpus", int_value=2)]},
    scope_spans=[ScopeSpans(scope={"name": "waybill.fixture", "version": "1"}, spans=[
        Span(trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60c"), span_id=bytes.fromhex("eee19b7ec3c1b174"),
             name="allocate", kind=Span.SPAN_KIND_SERVER,
             start_time_unix_nano=1795442400000000000, end_time_unix_nano=1795442400125000000,
             attributes=[kv("order.id", string_value="ORD-PB"), kv("retry", bool_value=True), kv("lines", int_value=-3),
                         kv("score", double_value=0.75), kv("tags", array_value=ArrayValue(values=[AnyValue(string_value="a"), AnyValue(int_value=7)])),
                         kv("nested", kvlist_value=KeyValueList(values=[kv("k", string_value="v")])), kv("raw", bytes_value=b"\x01\xff")],
             status=Status(code=Status.STATUS_CODE_ERROR, message="no stock"),
             events=[Span.Event(time_unix_nano=1795442400100000000, name="retry", attributes=[kv("attempt", int_value=2)])],
             links=[Span.Link(trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"), span_id=bytes.fromhex("b7ad6b7169203331"),
                              attributes=[kv("why", string_value="batch")])]),
        Span(trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60c"), span_id=bytes.fromhex("eee19b7ec3c1b175"),
             parent_span_id=bytes.fromhex("eee19b7ec3c1b174"), name="atp.lookup",
             start_time_unix_nano=1795442400010000000, end_time_unix_nano=1795442400020000000,
             status=Status(code=Status.STATUS_CODE_OK)),
        Span(trace_id=b"\x00" * 16, span_id=bytes.fromhex("eee19b7ec3c1b176"), name="no trace id",
             start_time_unix_nano=1, end_time_unix_nano=2),
    ])])])
open("otlp-trace.pb", "wb").write(req.SerializeToString())
