#!/usr/bin/env python3
"""N open orders for the alert benchmark (bench/alerts.sh), as NDJSON CloudEvents on stdout.

Orders are accepted over the 48 hours before AT. Every order stays open (nothing is invoiced or
cancelled). STUCK of them (default 1%) are never allocated; the rest are allocated within 10
minutes to one of six warehouses and move on (released, picked, packed, shipped) as far as AT
allows, except that STUCK of them stop at each later stage.
"""
import json, random, sys
from datetime import datetime, timedelta, timezone

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
stuck = float(sys.argv[2]) if len(sys.argv) > 2 else 0.01
at = datetime.fromisoformat((sys.argv[3] if len(sys.argv) > 3 else "2026-11-20T00:00:00+00:00").replace("Z", "+00:00"))
rng = random.Random(42)
whs = ["DC-EAST", "DC-WEST", "DC-SOUTH", "DC-NORTH", "DC-CENTRAL", "DC-PACIFIC"]
out = sys.stdout
def ts(t): return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
for i in range(n):
    o = f"SO-B{i:07d}"
    t = at - timedelta(seconds=172_800 * (n - i) / n)
    out.write(json.dumps({"specversion": "1.0", "id": o + "-a", "source": "oms", "type": "order.accepted", "time": ts(t), "subject": o,
                          "data": {"channel": "web", "region": "NE", "lines": [{"line": 1, "sku": "A", "qty": 2}]}}) + "\n")
    if rng.random() < stuck:
        continue
    wh = whs[i % 6]
    t2 = t + timedelta(seconds=rng.uniform(5, 600))
    if t2 >= at:
        continue
    out.write(json.dumps({"specversion": "1.0", "id": o + "-al", "source": "allocation", "type": "order.allocated", "time": ts(t2), "subject": o,
                          "data": {"warehouse": wh, "lines": [{"line": 1, "qty_allocated": 2 if rng.random() < 0.95 else 1}]}}) + "\n")
    stage_t = t2
    for stage in ["released", "picked", "packed", "shipped"]:
        stage_t = stage_t + timedelta(seconds=rng.uniform(600, 7200))
        if stage_t >= at or rng.random() < stuck:
            break
        data = {"warehouse": wh}
        if stage == "shipped":
            data["carrier"] = "UPS"
        out.write(json.dumps({"specversion": "1.0", "id": o + "-" + stage, "source": "wms", "type": "order." + stage, "time": ts(stage_t),
                              "subject": o, "data": data}) + "\n")
