#!/usr/bin/env python3
"""Where the writer thread's time goes, from a `perf record -g` of waybill.

Reads `perf script` output, keeps the samples of the writer thread (the thread whose call chains
pass through GroupCommitWriter.run: Foundation does not name the thread, so it is found by its
stacks, then all of its samples count), and prints the top symbols by self time (the leaf frame)
and the top Waybill functions by inclusive time (each function counted once a sample; samples
inside SQLite often do not unwind to them), names demangled with swift-demangle when on PATH.

usage: perf record -g -o perf.data waybill ingest FILE --db DB
       perf script -i perf.data | bench/perf_writer.py [TOP]      (default 25 rows each)
"""
import collections, re, shutil, subprocess, sys

top = int(sys.argv[1]) if len(sys.argv) > 1 else 25
frame_re = re.compile(r"^\s*[0-9a-f]+\s+(.*?)(?:\+0x[0-9a-f]+)?\s+\((.*)\)\s*$")
WRITER = "GroupCommitWriterC3run"

samples = []  # (tid, frames leaf first)
header_re = re.compile(r"^\S.*?\s(\d+)\s+[\d.]+:")


def flush(tid, frames):
    if tid is not None and frames:
        samples.append((tid, frames))


tid, frames = None, []
for line in sys.stdin:
    if not line.strip():
        flush(tid, frames)
        tid, frames = None, []
        continue
    if line[0] not in " \t":
        flush(tid, frames)
        m = header_re.match(line)
        tid, frames = (m.group(1) if m else None), []
        continue
    m = frame_re.match(line)
    if m:
        frames.append((m.group(1), m.group(2)))
flush(tid, frames)

# The writer is the thread whose stacks pass through GroupCommitWriter.run. All of its samples
# count, also those whose chain is cut short (SQLite is built without frame pointers, so a sample
# inside SQLite often does not unwind back to Waybill's frames).
through = collections.Counter(t for t, fr in samples if any(WRITER in f for f, _ in fr))
writer_tid = through.most_common(1)[0][0] if through else None
total = len(samples)
writer = 0
self_t = collections.Counter()
incl = collections.Counter()
dsos = collections.Counter()
for t, fr in samples:
    if t != writer_tid:
        continue
    writer += 1
    leaf, dso = fr[0]
    dso = dso.rsplit("/", 1)[-1]
    self_t[(leaf, dso)] += 1
    dsos[dso] += 1
    seen = set()
    for f, d in fr:
        if f not in seen and f.startswith("$s") and "Waybill" in f:
            seen.add(f)
            incl[f] += 1

names = sorted({s for s, _ in self_t} | set(incl))
demangled = {}
tool = shutil.which("swift-demangle")
if tool and names:
    out = subprocess.run([tool, "--simplified"], input="\n".join(names), capture_output=True, text=True).stdout.split("\n")
    demangled = {n: d for n, d in zip(names, out) if d}


def name(s):
    d = demangled.get(s, s)
    return d if len(d) <= 150 else d[:147] + "..."


print(f"samples: {total}; writer thread (tid {writer_tid}): {writer} ({100 * writer / max(total, 1):.1f}%), "
      f"{through[writer_tid] if writer_tid else 0} of them unwinding to GroupCommitWriter.run")
print("writer's samples by library: " + ", ".join(f"{d} {100 * n / max(writer, 1):.1f}%" for d, n in dsos.most_common(6)))
print(f"\nTop {top} symbols of the writer thread by self time (% of the writer's samples):")
for (s, dso), n in self_t.most_common(top):
    print(f"  {100 * n / max(writer, 1):5.1f}%  {name(s)}  [{dso}]")
print(f"\nTop {top} Waybill functions of the writer thread by inclusive time:")
for s, n in incl.most_common(top):
    print(f"  {100 * n / max(writer, 1):5.1f}%  {name(s)}")
