#!/usr/bin/env python3
"""Writes OTLP/JSON request bodies (one file per 200 orders) with the spans of the last DAYS days of
the orders bench/gen_orders.py wrote (same ids and times): per order a trace of 6 spans over 5
services, web -> orchestrator -> allocation -> erp, orchestrator -> wms -> carrier, with errors
(allocation 5%, erp 2%, carrier 10%). For bench/order_pages.sh.

usage: gen_order_spans.py ORDERS DAYS_TOTAL DAYS_WITH_SPANS OUTDIR"""
import json, os, random, sys
from datetime import datetime, timezone

n, days, last, out = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
os.makedirs(out, exist_ok=True)
rnd = random.Random(11)
start = int(datetime(2026, 10, 24, tzinfo=timezone.utc).timestamp() * 1000)
span_ms = days * 86400 * 1000
first = int(n * (1 - last / days))
def attr(k, v): return {"key": k, "value": {"stringValue": v}}
batch, b = {}, 0
def flush():
    global batch, b
    if not batch: return
    body = {"resourceSpans": [{"resource": {"attributes": [attr("service.name", s)]}, "scopeSpans": [{"scope": {"name": "bench"}, "spans": sp}]}
                              for s, sp in batch.items()]}
    with open(os.path.join(out, f"spans-{b:05d}.json"), "w") as f: json.dump(body, f)
    batch, b = {}, b + 1
for i in range(first, n):
    o = f"SO-{i:08d}"
    t = (start + span_ms * i // n) * 1_000_000  # ns
    trace = f"{rnd.getrandbits(128):032x}"
    def span(service, name, parent, at_ms, dur_ms, err_p, msg):
        sid = f"{rnd.getrandbits(64):016x}"
        err = rnd.random() < err_p
        s = {"traceId": trace, "spanId": sid, "name": name, "kind": 2,
             "startTimeUnixNano": str(t + int(at_ms * 1e6)), "endTimeUnixNano": str(t + int((at_ms + dur_ms) * 1e6)),
             "attributes": [attr("order.id", o)], "status": {"code": 2, "message": msg} if err else {"code": 1}}
        if parent: s["parentSpanId"] = parent
        batch.setdefault(service, []).append(s)
        return sid
    root = span("web", "POST /orders", None, 0, 80 + rnd.random() * 100, 0.0, "")
    orch = span("orchestrator", "create order", root, 5, 60 + rnd.random() * 60, 0.01, "workflow failed")
    alloc = span("allocation", "allocate", orch, 10, 20 + rnd.random() * 40, 0.05, "no stock response")
    span("erp", "reserve credit", alloc, 15, 10 + rnd.random() * 30, 0.02, "credit service timeout")
    wms = span("wms", "release", orch, 70, 5 + rnd.random() * 20, 0.0, "")
    span("carrier", "book shipment", wms, 75, 30 + rnd.random() * 200, 0.10, "carrier API 503")
    if (i - first + 1) % 200 == 0: flush()
flush()
print(f"{b} bodies, {(n - first) * 6} spans, orders {first}..{n - 1}")
