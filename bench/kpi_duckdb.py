#!/usr/bin/env python3
"""The reference for the KPI benchmark: DuckDB computing the figures of kpis.md (by warehouse, one step a day)
from the raw events. Loading the NDJSON into a DuckDB table is not timed; the query is, best of RUNS.

usage: kpi_duckdb.py EVENTS.ndjson FROM TO [RUNS]    prints the seconds of each run and a few figures
"""
import sys, time, duckdb

path, frm, to = sys.argv[1], sys.argv[2], sys.argv[3]
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
con = duckdb.connect()
con.execute(f"""CREATE TABLE ev AS SELECT id, source, type, CAST(time AS TIMESTAMPTZ) AS time, subject, data
    FROM read_json('{path}', format='newline_delimited',
                   columns={{id:'VARCHAR', source:'VARCHAR', type:'VARCHAR', time:'VARCHAR', subject:'VARCHAR', data:'JSON'}})""")
q = f"""
WITH acc AS (
  SELECT subject o, time, data FROM ev WHERE type = 'order.accepted'
  QUALIFY row_number() OVER (PARTITION BY subject ORDER BY time, id, source) = 1),
alc AS (
  SELECT subject o, time, data FROM ev WHERE type = 'order.allocated'
  QUALIFY row_number() OVER (PARTITION BY subject ORDER BY time, id, source) = 1),
rel AS (SELECT subject o, min(time) time FROM ev WHERE type = 'order.released' GROUP BY 1),
shp AS (
  SELECT subject o, time, data FROM ev WHERE type = 'order.shipped'
  QUALIFY row_number() OVER (PARTITION BY subject ORDER BY time, id, source) = 1),
ordered AS (
  SELECT o, CAST(l->>'line' AS VARCHAR) line, sum(CAST(l->>'qty' AS DOUBLE)) qty
  FROM acc, unnest(CAST(data->'lines' AS JSON[])) t(l) GROUP BY ALL),
allocated AS (
  SELECT o, CAST(l->>'line' AS VARCHAR) line, sum(CAST(l->>'qty_allocated' AS DOUBLE)) qa
  FROM alc, unnest(CAST(alc.data->'lines' AS JSON[])) t(l) GROUP BY ALL),
units AS (
  SELECT ordered.o, sum(qty) units_ordered, sum(least(coalesce(qa, 0), qty)) units_alloc, bool_and(coalesce(qa, 0) >= qty) fully
  FROM ordered LEFT JOIN allocated USING (o, line) GROUP BY 1),
af AS (
  SELECT alc.o, alc.data->>'warehouse' wh, date_trunc('day', alc.time AT TIME ZONE 'UTC') d,
         greatest(0, epoch(alc.time) - epoch(acc.time)) delay, u.units_ordered, u.units_alloc, u.fully
  FROM alc JOIN acc USING (o) JOIN units u USING (o)
  WHERE alc.time >= TIMESTAMPTZ '{frm}' AND alc.time < TIMESTAMPTZ '{to}'),
sf AS (
  SELECT shp.o, shp.data->>'warehouse' wh, date_trunc('day', shp.time AT TIME ZONE 'UTC') d,
         greatest(0, epoch(shp.time) - epoch(rel.time)) lag,
         CASE WHEN acc.data->>'promised_ship_by' IS NULL THEN NULL
              ELSE shp.time <= CAST(acc.data->>'promised_ship_by' AS TIMESTAMPTZ) END on_time
  FROM shp JOIN rel USING (o) LEFT JOIN acc USING (o)
  WHERE shp.time >= TIMESTAMPTZ '{frm}' AND shp.time < TIMESTAMPTZ '{to}'),
a AS (
  SELECT wh, d, count(*) orders_allocated, sum(units_alloc) / sum(units_ordered) fill_rate, avg(CAST(fully AS INT)) order_fill_rate,
         avg(delay) mean_s, quantile_disc(delay, [0.5, 0.9, 0.95, 0.99]) q, max(delay) max_s
  FROM af GROUP BY GROUPING SETS ((), (wh), (wh, d))),
s AS (
  SELECT wh, d, count(*) shipments, avg(lag) mean_s, quantile_disc(lag, [0.5, 0.9, 0.95, 0.99]) q, max(lag) max_s,
         avg(CAST(on_time AS INT)) on_time_rate
  FROM sf GROUP BY GROUPING SETS ((), (wh), (wh, d)))
SELECT * FROM a FULL JOIN s USING (wh, d) ORDER BY wh NULLS FIRST, d NULLS FIRST
"""
times = []
for _ in range(runs):
    t = time.perf_counter()
    rows = con.execute(q).fetchall()
    times.append(time.perf_counter() - t)
print("duckdb seconds per run:", " ".join(f"{x:.3f}" for x in times), f"best {min(times):.3f}")
print("rows:", len(rows))
for r in rows[:3]:
    print(r)
