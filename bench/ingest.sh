#!/usr/bin/env bash
# Bulk ingest: `waybill ingest` against the sqlite3 shell importing the same rows into a table with a
# unique (source, id) and a (subject, time) index, measured back to back in the same run.
#
# Three data sets of EVENTS lines each (one output line each, then where the bytes went):
#   interleaved, time   bench/gen_interleaved.py: every order's events merged by arrival, with
#                       stragglers, ~5% resends, clock offsets and late links (live traffic; the default)
#   interleaved, random the same lines shuffled (a backfill of concatenated exports)
#   contiguous          bench/gen_events.py: each order's events together, no resends (the old case)
# Each line: events/s of both (input lines / wall seconds, so the ratio is sqlite3's time over
# waybill's), their ratio against the target, waybill's peak RSS (/usr/bin/time -f %M), the store's
# bytes per stored event (the database file after a WAL checkpoint), and the 1-minute load average
# after the sqlite3 import and after waybill's ingest.
#
# usage: bench/ingest.sh [EVENTS]   (default 1000000; needs python3, sqlite3, /usr/bin/time)
#   WAYBILL=path   another build (default .build/release/waybill, built if missing)
#   RUNS=3         repeat the cases, interleaved (default 1)
#   CASES="time random contiguous"   which cases, in this order (default all three)
#   SEED=16        the interleaved generator's seed
# Extra environment reaches waybill, e.g. WAYBILL_WRITER_PROFILE=1 (seconds per writer phase).
# $BENCH_DIR/waybill.db is left holding the last case's store (contiguous by default), the store
# bench/trace_latency.sh reads.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
RUNS=${RUNS:-1}
CASES=${CASES:-time random contiguous}
SEED=${SEED:-16}
mkdir -p "$OUT"
W=${WAYBILL:-.build/release/waybill}
[ -n "${WAYBILL:-}" ] || [ -x "$W" ] || swift build -c release --product waybill
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

data() {  # data CASE -> the NDJSON path (its CSV beside it), generated once (renamed when complete)
  local f
  case $1 in
    time|random) f="$OUT/interleaved-$1-$N-s$SEED"
      [ -f "$f.csv" ] || { python3 bench/gen_interleaved.py --events "$N" --seed "$SEED" --order "$1" "$f.part.ndjson" --csv "$f.part.csv" >&2 \
        && mv "$f.part.ndjson" "$f.ndjson" && mv "$f.part.csv" "$f.csv"; } ;;
    contiguous) f="$OUT/events-$N"
      [ -f "$f.csv" ] || { python3 bench/gen_events.py "$N" "$f.part.ndjson" "$f.part.csv" >&2 \
        && mv "$f.part.ndjson" "$f.ndjson" && mv "$f.part.csv" "$f.csv"; } ;;
    *) echo "unknown case $1 (time, random, contiguous)" >&2; exit 2 ;;
  esac
  echo "$f"
}

target() { case $1 in time) echo 0.6 ;; random) echo 0.5 ;; *) echo 0.5 ;; esac; }
load() { cut -d' ' -f1 /proc/loadavg; }

for c in $CASES; do data "$c" >/dev/null; done
echo "== $N lines a case; waybill: $W; $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
for run in $(seq "$RUNS"); do
  for c in $CASES; do
    f=$(data "$c")
    rm -f "$OUT/ref.db"* "$OUT/waybill.db"*
    cat > "$OUT/ref.sql" <<SQL
PRAGMA journal_mode=WAL;
PRAGMA synchronous=FULL;
PRAGMA cache_size=-131072;
CREATE TABLE events(source TEXT, id TEXT, type TEXT, time TEXT, subject TEXT, raw TEXT);
CREATE UNIQUE INDEX events_key ON events(source, id);
CREATE INDEX events_subject ON events(subject, time);
.import --csv $f.csv events
SQL
    # A resend fails the unique index: the shell reports it on stderr and goes on (as a duplicate).
    s=$(date +%s.%N); sqlite3 "$OUT/ref.db" < "$OUT/ref.sql" >/dev/null 2>"$OUT/ref.err" || true; e=$(date +%s.%N)
    ref_s=$(python3 -c "print($e - $s)")
    ref_dups=$(grep -c 'UNIQUE constraint failed' "$OUT/ref.err" || true)
    other=$(grep -vc 'UNIQUE constraint failed' "$OUT/ref.err" || true)
    [ "$other" = 0 ] || { echo "sqlite3 import errors:" >&2; grep -v 'UNIQUE constraint failed' "$OUT/ref.err" | head >&2; exit 1; }
    load_ref=$(load)
    s=$(date +%s.%N)
    /usr/bin/time -f %M -o "$OUT/ingest.rss" "$W" ingest "$f.ndjson" --db "$OUT/waybill.db" > "$OUT/ingest.out" 2> "$OUT/ingest.err" \
      || { cat "$OUT/ingest.out" "$OUT/ingest.err" >&2; exit 1; }
    e=$(date +%s.%N)
    wb_s=$(python3 -c "print($e - $s)")
    load_wb=$(load)
    summary=$(grep '^accepted' "$OUT/ingest.out")
    accepted=$(echo "$summary" | sed -E 's/^accepted ([0-9]+),.*/\1/')
    # The store at rest: waybill sometimes exits with its WAL not yet checkpointed (tens of MB), so
    # checkpoint it into the database file before measuring.
    sqlite3 "$OUT/waybill.db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
    bytes=$(stat -c %s "$OUT/waybill.db")
    rss=$(tail -1 "$OUT/ingest.rss")
    python3 - "$c" "$N" "$wb_s" "$ref_s" "$(target "$c")" "$rss" "$bytes" "$accepted" "$ref_dups" "$load_ref" "$load_wb" "$summary" <<'PY'
import sys
c, n, wb, ref, tgt, rss, size, acc, dups, lr, lw, summary = sys.argv[1:]
n, wb, ref, tgt, rss, size, acc = int(n), float(wb), float(ref), float(tgt), int(rss), int(size), int(acc)
name = {"time": "interleaved, time-sorted", "random": "interleaved, random order", "contiguous": "contiguous (gen_events.py)"}[c]
print(f"{name:27s} waybill {n / wb:8,.0f} events/s ({wb:6.2f} s)  sqlite3 {n / ref:8,.0f} rows/s ({ref:6.2f} s)  "
      f"ratio {ref / wb:.2f} (target >= {tgt})  peak RSS {rss / 1024:5.0f} MiB  {size / max(acc, 1):4.0f} bytes/event  "
      f"load {lr}/{lw}")
print(f"{'':27s} waybill: {summary}; sqlite3: {dups} duplicates refused")
PY
    if [ -n "${WAYBILL_WRITER_PROFILE:-}" ]; then cat "$OUT/ingest.out" "$OUT/ingest.err" | grep -v '^accepted' | uniq | sed 's/^/    /' || true; fi
    if [ "$run" = 1 ]; then
      # Where the bytes are: each table and index (SQLite's dbstat), per stored event.
      sqlite3 "$OUT/waybill.db" "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC" | \
        python3 -c "import sys; rows = [l.strip().split('|') for l in sys.stdin]; print('    ' + ', '.join(f'{n} {int(b) / max($accepted, 1):.0f}' for n, b in rows if int(b) >= $accepted // 2) + ' (bytes/event; smaller ones left out)')"
    fi
  done
done
