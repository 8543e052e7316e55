#!/usr/bin/env python3
"""Writes N orders over D days as the CloudEvents the KPIs read: accepted, allocated (5% re-allocated
later with an earlier time: late arrival), released, shipped. NDJSON, in event-time order per order.

usage: gen_orders.py ORDERS DAYS OUT.ndjson
"""
import random, sys
from datetime import datetime, timezone

n = int(sys.argv[1]); days = int(sys.argv[2]); out = open(sys.argv[3], "w", buffering=1 << 22)
rnd = random.Random(7)
start = int(datetime(2026, 10, 24, tzinfo=timezone.utc).timestamp() * 1000)
whs = ["DC-EAST", "DC-WEST", "DC-CENTRAL", "DC-SOUTH", "DC-NORTH"]
chs = ["web", "marketplace", "edi", "store"]
regs = ["NE", "SE", "MW", "W"]
def iso(ms):
    s, m = divmod(ms, 1000)
    return datetime.fromtimestamp(s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{m:03d}Z"
span = days * 86400 * 1000
w = out.write
for i in range(n):
    o = f"SO-{i:08d}"
    t = start + span * i // n
    wh = whs[i % 5] if rnd.random() > 0.01 else None
    nl = 1 + i % 3
    qty = [1 + rnd.randrange(9) for _ in range(nl)]
    lines = ",".join(f'{{"line":{k+1},"sku":"SKU-{rnd.randrange(5000)}","qty":{q}}}' for k, q in enumerate(qty))
    w(f'{{"specversion":"1.0","id":"{o}-1","source":"oms","type":"order.accepted","time":"{iso(t)}","subject":"{o}",'
      f'"data":{{"channel":"{chs[i % 4]}","region":"{regs[(i // 4) % 4]}","promised_ship_by":"{iso(t + 36 * 3600000)}","lines":[{lines}]}}}}\n')
    delay = int(rnd.expovariate(1 / 300000)) if wh != "DC-EAST" else int(rnd.expovariate(1 / 900000))
    whj = f'"{wh}"' if wh else "null"
    alloc = ",".join(f'{{"line":{k+1},"qty_allocated":{q if rnd.random() > 0.04 else q - 1},"warehouse":{whj}}}' for k, q in enumerate(qty))
    w(f'{{"specversion":"1.0","id":"{o}-2","source":"allocation","type":"order.allocated","time":"{iso(t + delay)}","subject":"{o}",'
      f'"data":{{"warehouse":{whj},"lines":[{alloc}]}}}}\n')
    rel = t + delay + int(rnd.expovariate(1 / 1800000))
    w(f'{{"specversion":"1.0","id":"{o}-3","source":"wms","type":"order.released","time":"{iso(rel)}","subject":"{o}","data":{{"warehouse":{whj}}}}}\n')
    if i % 20 == 0:
        # A re-allocation that arrives late but happened earlier: it becomes the first allocation.
        w(f'{{"specversion":"1.0","id":"{o}-0","source":"allocation","type":"order.allocated","time":"{iso(t + delay // 2)}","subject":"{o}",'
          f'"data":{{"warehouse":"DC-SOUTH","lines":[{alloc}]}}}}\n')
    if i % 50 != 0:
        ship = rel + int(rnd.expovariate(1 / 7200000))
        w(f'{{"specversion":"1.0","id":"{o}-4","source":"wms","type":"order.shipped","time":"{iso(ship)}","subject":"{o}",'
          f'"data":{{"warehouse":{whj},"carrier":"UPS","tracking":"1Z{i:010d}"}}}}\n')
out.close()
