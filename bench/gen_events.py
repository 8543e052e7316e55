#!/usr/bin/env python3
"""Writes a synthetic order-lifecycle workload as CloudEvents NDJSON, plus the same rows as CSV
(source, id, type, time, subject, raw) for the sqlite3-shell reference import.

usage: gen_events.py EVENTS OUT.ndjson [OUT.csv]   (about 8 events an order, time-ordered per order)
"""
import csv, json, random, sys
from datetime import datetime, timedelta, timezone

n = int(sys.argv[1]); out = sys.argv[2]; csv_out = sys.argv[3] if len(sys.argv) > 3 else None
rnd = random.Random(42)
start = datetime(2026, 11, 1, tzinfo=timezone.utc)
warehouses = ["DC-EAST", "DC-WEST", "DC-CENTRAL", "DC-SOUTH"]
channels = ["web", "marketplace", "edi", "store"]
regions = ["NE", "SE", "MW", "W"]

def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"

f = open(out, "w")
c = csv.writer(open(csv_out, "w", newline="")) if csv_out else None
written = 0
order = 0
span = timedelta(days=30)
orders_total = max(1, n // 8)
while written < n:
    order += 1
    oid = f"SO-{order:08d}"
    t = start + span * (order / orders_total) + timedelta(seconds=rnd.random() * 60)
    wh = rnd.choice(warehouses)
    lines = [{"line": i + 1, "sku": f"SKU-{rnd.randrange(5000):05d}", "qty": rnd.randrange(1, 10)} for i in range(rnd.randrange(1, 4))]
    tracking = f"1Z{order:010d}"
    steps = [
        ("oms", "order.accepted", {"channel": rnd.choice(channels), "region": rnd.choice(regions), "customer": f"C-{rnd.randrange(20000)}",
                                   "promised_ship_by": iso(t + timedelta(hours=36)), "lines": lines}),
        ("orchestrator", "order.validated", {}),
        ("erp", "order.credit_checked", {"approved": True}),
        ("allocation", "order.allocated", {"warehouse": wh, "lines": [{"line": l["line"], "sku": l["sku"], "qty_allocated": l["qty"] if rnd.random() > 0.05 else 0, "warehouse": wh} for l in lines]}),
        ("wms-" + wh.split("-")[1].lower(), "order.released", {"warehouse": wh}),
        ("wms-" + wh.split("-")[1].lower(), "order.picked", {"warehouse": wh}),
        ("wms-" + wh.split("-")[1].lower(), "order.shipped", {"warehouse": wh, "carrier": "UPS", "tracking": tracking, "links": ["shipment:" + tracking]}),
        ("carrier", "shipment.delivered", {}),
    ]
    for i, (src, typ, data) in enumerate(steps):
        if written >= n:
            break
        t = t + timedelta(seconds=rnd.expovariate(1 / 600))
        subject = "shipment:" + tracking if typ.startswith("shipment.") else oid
        ev = {"specversion": "1.0", "id": f"{oid}-{i}", "source": src, "type": typ, "time": iso(t), "subject": subject,
              "traceparent": f"00-{order:032x}-{i + 1:016x}-01", "datacontenttype": "application/json", "data": data}
        line = json.dumps(ev, separators=(",", ":"))
        f.write(line + "\n")
        if c:
            c.writerow([src, ev["id"], typ, ev["time"], subject, line])
        written += 1
f.close()
