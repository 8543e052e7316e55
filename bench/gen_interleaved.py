#!/usr/bin/env python3
"""Interleaved order events as they arrive from real producers, as CloudEvents NDJSON.

Each order runs its lifecycle (accepted, validated, sometimes credit_checked, allocated (sometimes
short: backordered, sometimes re-allocated), released, picked (sometimes short_picked), packed,
shipped with `data.links` to `shipment:<tracking>`, the carrier's `shipment.*` events under that
key, order.delivered, invoiced with a link to `invoice:<id>`, sometimes `invoice.paid` under the
invoice key; about 3% are cancelled on the way) with realistic gaps, accepted over `--days` days
(default 30) with a daily peak. About 12.8 lines an order, resends included.

The systems that emit them (oms, erp, allocation, five WMS, tms, four carriers, finance) send
concurrently, so the file is every order's events merged by arrival time:
- transport delays: a second or two for most systems; carriers post their webhooks every 10
  minutes and 5% of scans up to 50 minutes late; finance exports hourly; 2% of all events are
  stragglers, up to 45 minutes later still;
- ~5% of events are resent (same source, id and body) seconds to 20 minutes later;
- a few systems' clocks are off (wms-east +45 s, wms-west -20 s, wms-south +150 s, carrier-dhl
  -90 s) and several write `time` with a non-UTC offset (-08:00, -06:00, -05:00, +01:00) and with
  0, 3 or 6 fractional digits;
- a link arrives before the events it joins (shipment, invoice keys) or after them (a carrier
  scan or payment that overtakes a late `order.shipped` / `order.invoiced`).

`--order time` (the default) writes arrival order: time-sorted with stragglers, as live traffic
arrives. `--order random` writes the same rows fully shuffled (a backfill that concatenates
exports), through temporary bucket files beside OUT, so memory stays bounded.

Streaming: a heap over per-order generators (one entry per order in flight) and a second heap that
holds events until their arrival time, so memory depends on the order rate, not on the file size
(about 1.6 KB an order in flight: ~60 MB at 1 M events over 30 days, ~450 MB at 30 M).
Seeded and reproducible byte for byte (same arguments, same bytes, whatever PYTHONHASHSEED is).

usage: gen_interleaved.py (--events N | --orders N) [--seed S] [--order time|random] [--days D]
                          [--csv FILE] OUT.ndjson      (OUT "-" is stdout, time order only)
  --events N   exactly N lines: enough orders are generated and the arrival stream is cut at N
               (the random order shuffles those same N lines)
  --csv FILE   the same rows, in the same order, as CSV (source,id,type,time,subject,raw) for the
               sqlite3 shell's .import reference (as gen_events.py writes)
Prints a summary to stderr.
"""
import argparse, gc, heapq, itertools, math, os, random, sys, time as _time
from datetime import datetime, timezone

EVENTS_PER_ORDER = 12.8  # measured mean, resends included; sizes --events' order count


class Source:
    """A producing system: its name, clock skew, the offset and precision it writes `time` with,
    how late its events arrive, and the fixed parts of its lines."""
    __slots__ = ("name", "shift", "suffix", "frac", "seconds", "delay", "cache", "dct")

    def __init__(self, name, skew_s=0.0, off_min=0, frac=3, delay=0, dct=False):
        self.name = name
        self.shift = int(skew_s * 1000) + off_min * 60000  # true UTC to the source's local clock
        if off_min == 0:
            self.suffix = "Z"
        else:
            sign = "+" if off_min > 0 else "-"
            self.suffix = "%s%02d:%02d" % (sign, abs(off_min) // 60, abs(off_min) % 60)
        self.frac = frac
        self.seconds = SECONDS0 if frac == 0 else SECONDS3
        self.delay = delay
        self.cache = {}
        self.dct = ',"datacontenttype":"application/json"' if dct else ""

    def hour(self, h):
        """`YYYY-MM-DDTHH:` of local hour h since the epoch, cached."""
        c = self.cache
        if len(c) > 4096:
            c.clear()
        d, hh = divmod(h, 24)
        p = c[h] = "%s%02d:" % (datetime.fromtimestamp(d * 86400, timezone.utc).strftime("%Y-%m-%dT"), hh)
        return p

    def stamp(self, t):
        """`time` as this source writes it for true time t (ms since the epoch); emit() inlines this."""
        m, ms = divmod(t + self.shift, 60000)
        h, m = divmod(m, 60)
        p = self.cache.get(h)
        if p is None:
            p = self.hour(h)
        if self.frac == 6:
            return p + MINUTES[m] + SECONDS3[ms] + MICROS[t % 1000] + self.suffix
        return p + MINUTES[m] + self.seconds[ms] + self.suffix


# `time` is assembled from cached pieces: formatting it whole was a fifth of the run.
MINUTES = ["%02d:" % m for m in range(60)]
SECONDS3 = ["%06.3f" % (ms / 1000) for ms in range(60000)]  # "SS.mmm" for ms within the minute
SECONDS0 = ["%02d" % (ms // 1000) for ms in range(60000)]
MICROS = ["%03d" % ((k * 389) % 1000) for k in range(1000)]  # sub-millisecond digits, for 6-digit sources


OMS = Source("oms", dct=True)
ERP = Source("erp", off_min=60, frac=0)
ALLOC = Source("allocation", frac=6, dct=True)
TMS = Source("tms")
FIN = Source("finance", frac=0, delay=3)
WAREHOUSES = [  # name, WMS, share of orders
    ("DC-EAST", Source("wms-east", skew_s=45, off_min=-300, delay=1), 0.30),
    ("DC-WEST", Source("wms-west", skew_s=-20, off_min=-480, frac=0, delay=1), 0.25),
    ("DC-CENTRAL", Source("wms-central", off_min=-360, delay=1), 0.20),
    ("DC-SOUTH", Source("wms-south", skew_s=150, delay=1), 0.15),
    ("DC-NORTH", Source("wms-north", dct=True, delay=1), 0.10),
]
CARRIERS = [  # name, source, share, tracking number format
    ("UPS", Source("carrier-ups", off_min=-300, frac=0, delay=2), 0.45, "1Z%06X%010d"),
    ("FEDEX", Source("carrier-fedex", off_min=-360, delay=2), 0.30, "%04d%08d"),
    ("USPS", Source("carrier-usps", delay=2), 0.15, "9400%06d%012d"),
    ("DHL", Source("carrier-dhl", skew_s=-90, off_min=60, delay=2), 0.10, "JD%04d%08d"),
]
CHANNELS = ["web", "web", "web", "marketplace", "marketplace", "edi", "store", "mobile"]
PREPAID = {"web", "marketplace", "mobile"}
REGIONS = ["NE", "SE", "MW", "SW", "W"]
CITIES = ["Newark NJ", "Louisville KY", "Memphis TN", "Indianapolis IN", "Ontario CA", "Dallas TX",
          "Atlanta GA", "Chicago IL", "Reno NV", "Allentown PA", "Columbus OH", "Phoenix AZ"]
MIN = 60000
HOUR = 60 * MIN
DAY = 24 * HOUR


def pick(rnd, table):
    r = rnd.random()
    for row in table:
        r -= row[2]
        if r <= 0:
            return row
    return table[-1]


class Generator:
    def __init__(self, seed, orders, days, csv):
        self.rnd = random.Random(seed)
        self.orders = orders
        self.days = days
        self.start = int(datetime(2026, 10, 5, tzinfo=timezone.utc).timestamp() * 1000)
        self.csv = csv
        self.delayed = []  # (arrival ms, seq, line, csv prefix, 1 if a resend)
        self.emit = self.make_emit()

    def accept_time(self, i):
        """Order i's acceptance, spread over the days with a peak at 18:00 UTC (3x the trough)."""
        u = (i + self.rnd.random()) / self.orders * self.days
        d = int(u)
        f = u - d
        # Monotonic warp of the day's fraction: density 1 / (1 - a cos(2 pi (f - peak))).
        a, p = 0.5, 0.75
        f = f - a / (2 * math.pi) * (math.sin(2 * math.pi * (f - p)) - math.sin(-2 * math.pi * p))
        return self.start + int((d + f) * DAY)

    def make_emit(self):
        """emit(t, source, id, type, subject, data, trace=None): renders one event that happened at
        true time t and queues it (and, 5% of the time, a resend) until its arrival."""
        r = self.rnd
        rand = r.random
        log = math.log
        bits = r.getrandbits
        delayed = self.delayed
        push = heapq.heappush
        seq = itertools.count(1).__next__
        csv = self.csv

        def emit(t, src, eid, typ, subject, data, trace=None, late=0):
            # src.stamp(t), inlined: this runs for every event.
            m, ms = divmod(t + src.shift, 60000)
            h, m = divmod(m, 60)
            p = src.cache.get(h)
            if p is None:
                p = src.hour(h)
            if src.frac == 6:
                stamp = p + MINUTES[m] + SECONDS3[ms] + MICROS[t % 1000] + src.suffix
            else:
                stamp = p + MINUTES[m] + src.seconds[ms] + src.suffix
            if trace is not None:
                line = '{"specversion":"1.0","id":"%s","source":"%s","type":"%s","time":"%s","subject":"%s","traceparent":"00-%s-%016x-01"%s,"data":%s}' % (
                    eid, src.name, typ, stamp, subject, trace, bits(64) | 1, src.dct, data)
            else:
                line = '{"specversion":"1.0","id":"%s","source":"%s","type":"%s","time":"%s","subject":"%s"%s,"data":%s}' % (
                    eid, src.name, typ, stamp, subject, src.dct, data)
            # The CSV row's fields before raw, and \x01 where raw's opening quote goes (see write()).
            pre = "%s,%s,%s,%s,%s,\x01" % (src.name, eid, typ, stamp, subject) if csv else None
            # Transport delay, in ms.
            k = src.delay
            if k == 0:  # direct HTTP from a service
                d = int(-400.0 * log(1.0 - rand()))
            elif k == 1:  # WMS: through a message bus
                d = int(-2500.0 * log(1.0 - rand()))
            elif k == 2:  # carrier webhooks posted every 10 minutes; 5% of scans much later
                d = int(rand() * 10 * MIN)
                if rand() < 0.05:
                    d += int(rand() * 40 * MIN)
            else:  # finance: hourly batch export
                d = int(rand() * 60 * MIN)
            if rand() < 0.02:  # straggler
                d += min(int(-10.0 * MIN * log(1.0 - rand())), 45 * MIN)
            arrival = t + d + late
            push(delayed, (arrival, seq(), line, pre, 0))
            if rand() < 0.05:  # a resend: the producer did not see the acknowledgement
                again = arrival + (1000 + int(rand() * 29000) if rand() < 0.5 else MIN + int(rand() * 19 * MIN))
                push(delayed, (again, seq(), line, pre, 1))

        return emit

    def order(self, i, t):
        """One order's lifecycle: yields the true time of its next event; when resumed, emits it."""
        r = self.rnd
        rand = r.random
        log = math.log
        emit = self.emit
        oid = "SO-%08d" % (i + 1)
        trace = "%032x" % r.getrandbits(128)
        wh, wms, _ = pick(r, WAREHOUSES)
        ch = CHANNELS[int(r.random() * 8)]
        region = REGIONS[int(r.random() * 5)]
        u = r.random()
        n = 1 if u < 0.45 else 2 if u < 0.70 else 3 if u < 0.85 else 4 if u < 0.95 else 5 + int(r.random() * 6)
        skus = [int(5000 * r.random() ** 3) for _ in range(n)]
        qtys = [1 + int(9 * r.random() ** 2) for _ in range(n)]
        amount = sum([q * (5 + (s * 7919) % 9000 / 100.0) for s, q in zip(skus, qtys)])

        # accepted
        yield t
        lines = ",".join(['{"line":%d,"sku":"SKU-%05d","qty":%d}' % (k + 1, skus[k], qtys[k]) for k in range(n)])
        emit(t, OMS, "oms-%d-1" % (i + 1), "order.accepted", oid,
             '{"channel":"%s","region":"%s","customer":"C-%06d","promised_ship_by":"%s","lines":[%s]}'
             % (ch, region, int(200000 * r.random()), OMS.stamp(t + 36 * HOUR - t % HOUR), lines), trace)
        del lines  # an order in flight keeps its frame for days: hold only what is still needed
        t += 100 + int(-600.0 * log(1.0 - rand()))
        yield t
        emit(t, OMS, "oms-%d-2" % (i + 1), "order.validated", oid, "{}", trace)
        if r.random() < 0.35:
            t += 1000 + int(-8000.0 * log(1.0 - rand()))
            yield t
            ok = r.random() > 0.03
            emit(t, ERP, "ERP-%09d" % (7 * i + 3), "order.credit_checked", oid,
                 '{"approved":true}' if ok else '{"approved":false}', trace)
            if not ok:
                t += 30000 + int(-120000.0 * log(1.0 - rand()))
                yield t
                emit(t, OMS, "oms-%d-9" % (i + 1), "order.cancelled", oid, '{"reason":"credit_declined"}', trace)
                return
        if r.random() < 0.005:  # the customer changes their mind early
            t += int(-(20.0 * MIN) * log(1.0 - rand()))
            yield t
            emit(t, OMS, "oms-%d-9" % (i + 1), "order.cancelled", oid, '{"reason":"customer_request"}', trace)
            return

        # allocation: 8% short on a line (backordered: shipped short, or, when nothing could be
        # allocated, cancelled or re-allocated once stock arrives); 3% re-allocated later anyway
        t += 500 + int(-60000.0 * log(1.0 - rand()))
        yield t
        alloc = list(qtys)
        short = r.random() < 0.08
        if short:
            k = int(r.random() * n)
            alloc[k] = int(qtys[k] * r.random())
        al = ",".join(['{"line":%d,"sku":"SKU-%05d","qty_allocated":%d,"warehouse":"%s"}' % (k + 1, skus[k], alloc[k], wh) for k in range(n)])
        emit(t, ALLOC, "al-%d-1" % (i + 1), "order.allocated", oid, '{"warehouse":"%s","lines":[%s]}' % (wh, al), trace)
        realloc = r.random() < 0.03
        if short:
            t += 5 + int(r.random() * 200)
            yield t
            bo = ",".join(['{"line":%d,"sku":"SKU-%05d","qty_backordered":%d}' % (k + 1, skus[k], qtys[k] - alloc[k]) for k in range(n) if alloc[k] < qtys[k]])
            emit(t, ALLOC, "al-%d-2" % (i + 1), "order.backordered", oid, '{"lines":[%s]}' % bo, trace)
            if sum(alloc) == 0:
                if r.random() < 0.5:
                    t += int(-(4.0 * HOUR) * log(1.0 - rand()))
                    yield t
                    emit(t, OMS, "oms-%d-9" % (i + 1), "order.cancelled", oid, '{"reason":"out_of_stock"}', trace)
                    return
                alloc = list(qtys)  # replenished: allocated in full, hours later
                realloc = True
                t += 2 * HOUR + int(-(8.0 * HOUR) * log(1.0 - rand()))
        if realloc:
            t += 10 * MIN + int(-(40.0 * MIN) * log(1.0 - rand()))
            yield t
            al = ",".join(['{"line":%d,"sku":"SKU-%05d","qty_allocated":%d,"warehouse":"%s"}' % (k + 1, skus[k], alloc[k], wh) for k in range(n)])
            emit(t, ALLOC, "al-%d-3" % (i + 1), "order.allocated", oid, '{"warehouse":"%s","lines":[%s],"reallocation":true}' % (wh, al), trace)
        qtys = alloc  # what ships
        del al, skus

        # warehouse: release in the next 30-minute wave, pick, pack
        t += 30 * MIN - t % (30 * MIN) + int(r.random() * 90000)
        yield t
        wd = '{"warehouse":"%s"}' % wh
        ws = wms.name
        emit(t, wms, "%s-%d-r" % (ws, i + 1), "order.released", oid, '{"warehouse":"%s","wave":"W%d"}' % (wh, (t // (30 * MIN)) % 100000))
        t += 5 * MIN + int(-(40.0 * MIN) * log(1.0 - rand()))
        yield t
        emit(t, wms, "%s-%d-p" % (ws, i + 1), "order.picked", oid, wd)
        if r.random() < 0.02:
            t += 1000 + int(r.random() * 60000)
            yield t
            k = int(r.random() * n)
            if qtys[k] > 0:
                emit(t, wms, "%s-%d-s" % (ws, i + 1), "order.short_picked", oid,
                     '{"warehouse":"%s","lines":[{"line":%d,"qty_short":1}]}' % (wh, k + 1))
                qtys[k] -= 1
        t += 2 * MIN + int(-(12.0 * MIN) * log(1.0 - rand()))
        yield t
        emit(t, wms, "%s-%d-k" % (ws, i + 1), "order.packed", oid, wd)
        if r.random() < 0.005:
            t += int(-HOUR * log(1.0 - rand()))
            yield t
            emit(t, OMS, "oms-%d-9" % (i + 1), "order.cancelled", oid, '{"reason":"customer_request"}', trace)
            return

        # shipping: the next carrier pickup (every 2 hours) after packing
        carrier, csrc, _, fmt = pick(r, CARRIERS)
        tracking = fmt % (i * 7919 % 0xFFFFFF, i + 1) if carrier == "UPS" else fmt % (i % 10000, i + 1)
        shipkey = "shipment:" + tracking
        ship = t + 2 * HOUR - t % (2 * HOUR) + int(r.random() * 10 * MIN)
        shipped_lines = ",".join(['{"line":%d,"qty_shipped":%d}' % (k + 1, qtys[k]) for k in range(n)])
        later = []  # true time * 8 + what: the rest happens in parallel, emitted in time order
        later.append(ship * 8 + 0)
        scan = ship + 20 * MIN + int(-(40.0 * MIN) * log(1.0 - rand()))
        later.append(scan * 8 + 1)  # carrier pickup scan
        if r.random() < 0.6:
            later.append((scan + 3 * HOUR + int(r.random() * 9 * HOUR)) * 8 + 2)  # in transit
        lost = r.random() < 0.01
        delivered = scan + 14 * HOUR + int(-(30.0 * HOUR) * log(1.0 - rand()))
        if lost:
            later.append(delivered * 8 + 3)  # carrier exception
        else:
            later.append(delivered * 8 + 4)
            later.append((delivered + 30000 + int(-(5.0 * MIN) * log(1.0 - rand()))) * 8 + 5)  # order.delivered
        inv = ship + 10 * MIN + int(-(2.0 * HOUR) * log(1.0 - rand()))
        later.append(inv * 8 + 6)
        u = rand()
        if ch in PREPAID and u < 0.4:
            # A card captured at shipment: the payment is posted under the invoice key, often
            # before the ERP's invoice (and its link) arrives.
            later.append((ship + 60000 + int(rand() * 10 * MIN)) * 8 + 7)
        elif u < 0.15:
            later.append((inv + DAY + int(rand() * 9 * DAY)) * 8 + 7)  # paid on terms, within the window
        later.sort()
        del qtys
        invoice = "INV-%08d" % (3 * i + 1000)
        # 8% of shipments are confirmed when the manifest closes, after the carrier's first scans
        # (the shipment link then arrives after events that need it).
        manifest = 20 * MIN + int(rand() * 40 * MIN) if rand() < 0.08 else 0
        for v in later:
            when, k = v >> 3, v & 7
            yield when
            if k == 0:
                emit(when, TMS, "tms-%d-s" % (i + 1), "order.shipped", oid,
                     '{"warehouse":"%s","carrier":"%s","tracking":"%s","lines":[%s],"links":["%s"]}'
                     % (wh, carrier, tracking, shipped_lines, shipkey), trace, manifest)
                del shipped_lines
            elif k == 1:
                emit(when, csrc, "%x" % r.getrandbits(64), "shipment.picked_up", shipkey,
                     '{"carrier":"%s","location":"%s"}' % (carrier, CITIES[int(r.random() * 12)]))
            elif k == 2:
                emit(when, csrc, "%x" % r.getrandbits(64), "shipment.in_transit", shipkey,
                     '{"carrier":"%s","location":"%s"}' % (carrier, CITIES[int(r.random() * 12)]))
            elif k == 3:
                emit(when, csrc, "%x" % r.getrandbits(64), "shipment.exception", shipkey,
                     '{"carrier":"%s","reason":"damaged"}' % carrier)
            elif k == 4:
                emit(when, csrc, "%x" % r.getrandbits(64), "shipment.delivered", shipkey,
                     '{"carrier":"%s","signed_by":"front door"}' % carrier)
            elif k == 5:
                emit(when, TMS, "tms-%d-d" % (i + 1), "order.delivered", oid, '{"carrier":"%s"}' % carrier, trace)
            elif k == 6:
                emit(when, ERP, "ERP-%09d" % (7 * i + 5), "order.invoiced", oid,
                     '{"amount":%.2f,"currency":"USD","links":["invoice:%s"]}' % (amount, invoice), trace)
            else:
                emit(when, FIN, "PAY-%08d" % (3 * i + 1000), "invoice.paid", "invoice:" + invoice, '{"amount":%.2f}' % amount)

    def arrivals(self, chunk=8192):
        """Yields lists of (arrival, seq, line, csv prefix) in arrival order, until every order is done."""
        heap = []
        delayed = self.delayed
        pop = heapq.heappop
        replace = heapq.heapreplace
        push = heapq.heappush
        next_i = 0
        next_t = self.accept_time(0) if self.orders > 0 else None
        seq = 0
        ready = []
        take = ready.append
        while heap or next_t is not None:
            if next_t is not None and (not heap or next_t <= heap[0][0]):
                g = self.order(next_i, next_t)
                seq += 1
                push(heap, (next(g), seq, g))
                next_i += 1
                next_t = self.accept_time(next_i) if next_i < self.orders else None
                continue
            now, _, g = heap[0]
            # Whatever arrived by now can go: every later event happens (and arrives) at or after now.
            while delayed and delayed[0][0] <= now:
                take(pop(delayed))
            if len(ready) >= chunk:
                yield ready
                ready = []
                take = ready.append
            try:
                nt = next(g)
                seq += 1
                replace(heap, (nt, seq, g))
            except StopIteration:
                pop(heap)
        while delayed:
            take(pop(delayed))
        yield ready


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = ap.add_mutually_exclusive_group(required=True)
    size.add_argument("--events", type=int, help="exactly this many lines (the arrival stream cut there)")
    size.add_argument("--orders", type=int, help="this many orders, every event of each")
    ap.add_argument("--seed", type=int, default=16, help="random seed (default 16)")
    ap.add_argument("--order", choices=["time", "random"], default="time",
                    help="time: arrival order, time-sorted with stragglers (default); random: the same lines shuffled")
    ap.add_argument("--days", type=float, default=30, help="days over which orders are accepted (default 30)")
    ap.add_argument("--csv", metavar="FILE", help="also write the rows as CSV (source,id,type,time,subject,raw)")
    ap.add_argument("out", help='the NDJSON file ("-": stdout, time order only)')
    a = ap.parse_args()
    # Nothing here makes reference cycles; the cyclic collector would only cost time (~15%).
    gc.disable()
    if a.order == "random" and a.out == "-":
        ap.error("--order random needs a file (it shuffles through bucket files beside it)")
    limit = a.events
    orders = a.orders if a.orders is not None else int(a.events / EVENTS_PER_ORDER * 1.03) + 20
    gen = Generator(a.seed, orders, a.days, a.csv is not None)
    started = _time.time()
    cpu0 = _time.process_time()
    out = sys.stdout if a.out == "-" else open(a.out, "w", buffering=1 << 20)
    cf = open(a.csv, "w", buffering=1 << 20) if a.csv else None
    written = 0
    nbytes = 0
    resends = 0

    def write(batch):
        nonlocal nbytes, resends
        resends += sum([e[4] for e in batch])
        s = "\n".join([e[2] for e in batch]) + "\n"
        nbytes += len(s)
        out.write(s)
        if cf:
            # CSV: raw in quotes with its quotes doubled (the other fields have no quotes or commas),
            # escaped a chunk at a time: \x01 marks the quotes around raw.
            c = "\x01\n".join([e[3] + e[2] for e in batch]) + "\x01\n"
            cf.write(c.replace('"', '""').replace("\x01", '"'))

    if a.order == "time":
        for batch in gen.arrivals():
            if limit is not None and written + len(batch) >= limit:
                batch = batch[:limit - written]
            if batch:
                write(batch)
            written += len(batch)
            if written == limit:
                break
    else:
        # A uniform shuffle in bounded memory: each line goes to a random bucket file, then each
        # bucket is shuffled in memory and appended. The lines are those of --order time.
        srnd = random.Random(a.seed * 1000003 + 1)
        expected = limit if limit is not None else int(orders * EVENTS_PER_ORDER)
        k = max(1, -(-expected // 100_000))
        base = a.out + ".bucket"
        buckets = [open("%s%d" % (base, b), "w", buffering=1 << 20) for b in range(k)]
        for batch in gen.arrivals():
            if limit is not None and written + len(batch) >= limit:
                batch = batch[:limit - written]
            for e in batch:
                buckets[int(srnd.random() * k)].write("%s\x1f%s\x1f%d\n" % (e[2], e[3] or "", e[4]))
            written += len(batch)
            if written == limit:
                break
        for f in buckets:
            f.close()
        for b in range(k):
            name = "%s%d" % (base, b)
            with open(name) as f:
                recs = f.read().split("\n")
            os.remove(name)
            recs.pop()  # after the last newline
            srnd.shuffle(recs)
            for c in range(0, len(recs), 8192):
                write([(0, 0, line, pre, int(again)) for line, pre, again in (rec.split("\x1f") for rec in recs[c:c + 8192])])
    if out is not sys.stdout:
        out.close()
    if cf:
        cf.close()
    secs = _time.time() - started
    cpu = _time.process_time() - cpu0
    if limit is not None and written < limit:
        print(f"gen_interleaved: only {written} events from {orders} orders (asked for {limit})", file=sys.stderr)
        sys.exit(1)
    print(f"gen_interleaved: {written} events ({resends} of them resends) of {orders} orders over {a.days:g} days, "
          f"order {a.order}, seed {a.seed}: {nbytes / max(written, 1):.0f} bytes/event, {secs:.1f} s ({written / max(secs, 1e-9):,.0f} events/s; CPU {cpu:.1f} s, {written / max(cpu, 1e-9):,.0f} events/s)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
