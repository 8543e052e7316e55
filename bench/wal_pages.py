#!/usr/bin/env python3
"""Pages each commit wrote, by table and index, read from a store's write-ahead log.

Run a server with checkpoints held off (`WAYBILL_CHECKPOINT_PAGES=1000000000`) so the WAL keeps every
commit, stop it with SIGKILL (a clean stop checkpoints and removes the WAL), then:

    bench/wal_pages.py STORE.db [--skip N]

Prints, per table or index, the pages a commit wrote on average (each commit's distinct pages; the
first N commits skipped, for a warm store), the WAL's bytes per commit, and the commits counted.
Pages are named by `dbstat` of a copy of the store with the WAL applied; a page that changed owner
during the run (rare: freed and reused) is counted under its last owner.
"""
import collections, os, shutil, sqlite3, struct, sys, tempfile


def main():
    args = sys.argv[1:]
    skip = 0
    if "--skip" in args:
        i = args.index("--skip")
        skip = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    db = args[0]
    wal = db + "-wal"
    with open(wal, "rb") as f:
        data = f.read()
    if len(data) < 32:
        sys.exit(f"{wal}: no WAL (was the server stopped with SIGKILL and checkpoints held off?)")
    magic, _version, page_size, _ckpt, salt1, salt2 = struct.unpack(">IIIIII", data[:24])
    if magic not in (0x377F0682, 0x377F0683):
        sys.exit(f"{wal}: not a WAL file")
    frame = 24 + page_size
    commits, pages = [], set()
    off = 32
    while off + frame <= len(data):
        pgno, commit_size, s1, s2 = struct.unpack(">IIII", data[off:off + 16])
        if (s1, s2) != (salt1, salt2):
            break
        pages.add(pgno)
        if commit_size:
            commits.append(pages)
            pages = set()
        off += frame
    tmp = tempfile.mkdtemp()
    try:
        copy = os.path.join(tmp, "s.db")
        shutil.copy(db, copy)
        shutil.copy(wal, copy + "-wal")
        c = sqlite3.connect(copy)
        owner = dict((p, n) for n, p in c.execute("SELECT name, pageno FROM dbstat"))
        c.close()
    finally:
        shutil.rmtree(tmp)
    counted = commits[skip:]
    if not counted:
        sys.exit(f"{len(commits)} commits in the WAL, none after --skip {skip}")
    per = collections.Counter()
    for ps in counted:
        for p in ps:
            per[owner.get(p, "(free or new)")] += 1
    n = len(counted)
    total = sum(per.values())
    print(f"{n} commits counted ({len(commits)} in the WAL), page size {page_size}: "
          f"{total / n:.1f} pages = {total / n * page_size / 1024:.0f} KiB a commit")
    for name, k in per.most_common():
        print(f"  {name:32s} {k / n:8.1f} pages/commit  {100 * k / total:5.1f}%")


if __name__ == "__main__":
    main()
