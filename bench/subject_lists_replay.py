#!/usr/bin/env python3
# Replays the (subject, block) appends of a schema-13 store (its event_keys rows, in seq order, a commit
# every 30 blocks) into three layouts and prints the CPU per append: a row per (subject, block)
# (event_keys), the per-subject lists of schema 14 with the part check by RETURNING ("ret"), and by a
# counted length as SubjectLists does ("count"). Python's sqlite3 is the same SQLite 3.40 as the build.
# usage: python3 bench/subject_lists_replay.py STORE_OF_SCHEMA_13.db [SCRATCH_DIR]
import sqlite3, sys, time, os
src=sqlite3.connect(sys.argv[1])
D=sys.argv[2] if len(sys.argv) > 2 else '/tmp'
ops=src.execute("SELECT subject, seq FROM event_keys ORDER BY seq").fetchall()
N=len(ops); print(N,"ops")
def varint(q):
    out=bytearray()
    while q>=128: out.append(q&0x7f|0x80); q>>=7
    out.append(q); return bytes(out)
def run(name):
    p=f"{D}/subject-lists-{name}.db"
    for x in (p, p+"-wal", p+"-shm"):
        if os.path.exists(x): os.remove(x)
    c=sqlite3.connect(p, isolation_level=None); c.execute("PRAGMA page_size=8192"); c.execute("PRAGMA journal_mode=WAL"); c.execute("PRAGMA synchronous=OFF")
    if name=="rows":
        c.execute("CREATE TABLE k(subject TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(subject, seq)) WITHOUT ROWID")
    else:
        c.execute("CREATE TABLE k(subject TEXT NOT NULL, part INTEGER NOT NULL, seqs BLOB NOT NULL, PRIMARY KEY(subject, part)) WITHOUT ROWID")
    cnt={}
    t=time.process_time(); w=time.time()
    c.execute("BEGIN"); last=None; nb=0
    for s,q in ops:
        if q!=last:
            nb+=1; last=q
            if nb%30==0: c.execute("COMMIT"); c.execute("BEGIN")
        if name=="rows":
            c.execute("INSERT OR IGNORE INTO k(subject, seq) VALUES(?,?)",(s,q))
        elif name=="ret":
            n=c.execute("INSERT INTO k(subject, part, seqs) VALUES(?,0,?) ON CONFLICT(subject, part) DO UPDATE SET seqs = CAST(seqs || excluded.seqs AS BLOB) RETURNING length(seqs)",(s,varint(q))).fetchone()[0]
            if n>=120: c.execute("UPDATE k SET part=? WHERE subject=? AND part=0",(q,s))
        else:
            v=varint(q)
            c.execute("INSERT INTO k(subject, part, seqs) VALUES(?,0,?) ON CONFLICT(subject, part) DO UPDATE SET seqs = CAST(seqs || excluded.seqs AS BLOB)",(s,v))
            h=hash(s)&1048575; n=cnt.get(h,0)+len(v)
            if n>=120:
                n=c.execute("SELECT length(seqs) FROM k WHERE subject=? AND part=0",(s,)).fetchone()[0]
                if n>=120: c.execute("UPDATE k SET part=? WHERE subject=? AND part=0",(q,s)); n=0
            cnt[h]=n
    c.execute("COMMIT")
    print(f"{name:6s} {(time.process_time()-t)/N*1e6:.2f} us/op cpu {(time.time()-w)/N*1e6:.2f} wall, {os.path.getsize(p)} bytes, load {os.getloadavg()[0]:.1f}")
    c.close()
    for x in (p, p+"-wal", p+"-shm"):
        if os.path.exists(x): os.remove(x)
for r in range(2):
    for n in ("rows","ret","count"): run(n)
