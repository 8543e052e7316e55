#!/usr/bin/env bash
# Bulk ingest: `waybill ingest` against the sqlite3 shell importing the same rows into an indexed table.
# usage: bench/ingest.sh [EVENTS]   (default 1000000; needs python3, sqlite3, a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
OUT=${BENCH_DIR:-/tmp/waybill-bench}
mkdir -p "$OUT"
W=.build/release/waybill
[ -x "$W" ] || swift build -c release --product waybill
if [ ! -f "$OUT/events-$N.ndjson" ]; then
  python3 bench/gen_events.py "$N" "$OUT/events-$N.ndjson" "$OUT/events-$N.csv"
fi
rm -f "$OUT/ref.db" "$OUT/waybill.db"*
cat > "$OUT/ref.sql" <<SQL
PRAGMA journal_mode=WAL;
PRAGMA synchronous=FULL;
PRAGMA cache_size=-131072;
CREATE TABLE events(source TEXT, id TEXT, type TEXT, time TEXT, subject TEXT, raw TEXT);
CREATE UNIQUE INDEX events_key ON events(source, id);
CREATE INDEX events_subject ON events(subject, time);
.import --csv $OUT/events-$N.csv events
SQL
echo "== reference: sqlite3 shell .import of $N rows into a table with a unique (source,id) and a (subject,time) index"
s=$(date +%s.%N); sqlite3 "$OUT/ref.db" < "$OUT/ref.sql" >/dev/null; e=$(date +%s.%N)
ref=$(python3 -c "print(f'{$N/($e-$s):.0f}')")
echo "sqlite3: $(python3 -c "print(f'{$e-$s:.2f}')") s, $ref rows/s"
echo "== waybill ingest of the same $N events (NDJSON: parse, validate, dedup, facts, links)"
s=$(date +%s.%N); $W ingest "$OUT/events-$N.ndjson" --db "$OUT/waybill.db"; e=$(date +%s.%N)
wb=$(python3 -c "print(f'{$N/($e-$s):.0f}')")
echo "waybill: $(python3 -c "print(f'{$e-$s:.2f}')") s, $wb events/s"
python3 -c "print(f'ratio waybill/sqlite3 = {$wb/$ref:.2f} (target >= 0.5)')"
ls -la "$OUT"/waybill.db* "$OUT/ref.db" | awk '{print $5, $9}'
