#!/usr/bin/env python3
"""The cost curve as an SVG (no plotting library): events/s per million events stored (left axis, line)
and, at the marks, bytes per event and trace p99 (labels); with a load_sampled column, the machine's load
(dashed, right axis). usage: cost_curve_svg.py curve.csv marks.csv out.svg"""
import csv, sys

curve = list(csv.DictReader(open(sys.argv[1])))
marks = list(csv.DictReader(open(sys.argv[2])))
W, H, L, R, T, B = 780, 380, 70, 40, 40, 50
xs = [int(r["events"]) / 1e6 for r in curve] or [0]
ys = [float(r["events_per_s"]) for r in curve] or [0]
xmax = max(xs + [int(m["events"]) / 1e6 for m in marks] + [1])
ymax = max(ys + [1]) * 1.15
X = lambda x: L + (W - L - R) * x / xmax
Y = lambda y: H - B - (H - T - B) * y / ymax
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W/2}" y="20" text-anchor="middle" font-size="14">waybill ingest: events/s per million events stored (interleaved, time-sorted)</text>']
for i in range(6):
    v = ymax * i / 5
    out.append(f'<line x1="{L}" x2="{W-R}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#ddd"/>')
    out.append(f'<text x="{L-6}" y="{Y(v)+4:.1f}" text-anchor="end">{v/1000:.0f}k</text>')
step = 5 if xmax > 10 else 1
for i in range(0, int(xmax) + 1, step):
    out.append(f'<text x="{X(i):.1f}" y="{H-B+16}" text-anchor="middle">{i}M</text>')
out.append(f'<text x="{W/2}" y="{H-10}" text-anchor="middle">events stored (millions)</text>')
out.append(f'<line x1="{L}" x2="{L}" y1="{T}" y2="{H-B}" stroke="black"/><line x1="{L}" x2="{W-R}" y1="{H-B}" y2="{H-B}" stroke="black"/>')
if curve:
    pts = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in zip(xs, ys))
    out.append(f'<polyline points="{pts}" fill="none" stroke="#1f6feb" stroke-width="2"/>')
loads = [float(r["load_sampled"]) for r in curve if r.get("load_sampled")]
if loads and len(loads) == len(xs):
    # The machine's load while each million was ingested (right axis): the rate's dips are read against it.
    lmax = max(loads + [1]) * 1.15
    LY = lambda v: H - B - (H - T - B) * v / lmax
    pts = " ".join(f"{X(x):.1f},{LY(v):.1f}" for x, v in zip(xs, loads))
    out.append(f'<polyline points="{pts}" fill="none" stroke="#999" stroke-width="1.5" stroke-dasharray="5 3"/>')
    for i in range(6):
        v = lmax * i / 5
        out.append(f'<text x="{W-R+4}" y="{LY(v)+4:.1f}" fill="#777" font-size="11">{v:.0f}</text>')
    out.append(f'<text x="{W-R}" y="{T-6}" text-anchor="end" fill="#777" font-size="11">load (dashed, right)</text>')
for m in marks:
    x = X(int(m["events"]) / 1e6)
    out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{T}" y2="{H-B}" stroke="#999" stroke-dasharray="4 3"/>')
    label = f'{int(m["events"])/1e6:.0f}M: {m["bytes_per_event"]} B/event, trace p99 {m["trace_p99_ms"]} ms, KPI {m["kpi_median_ms"]} ms'
    out.append(f'<text x="{x-4:.1f}" y="{T+14}" text-anchor="end" font-size="11" transform="rotate(-90 {x-4:.1f} {T+14})">{label}</text>')
out.append("</svg>")
open(sys.argv[3], "w").write("\n".join(out) + "\n")
