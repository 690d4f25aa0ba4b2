#!/usr/bin/env python3
"""SQLite's own cost of a topic's two row writes, without the sink: the sink's INSERT and its
completion UPDATE (same statements, same schema variants), 20,000 topics in transactions of 1,000.
Run under callgrind and read the inclusive count of sqlite3_step:

  valgrind --tool=callgrind --callgrind-out-file=/tmp/floor.out "$(python3 -c 'import sys; print(sys.executable)')" \
      bench/sqlite_floor/floor.py pk-ready both
  callgrind_annotate --inclusive=yes /tmp/floor.out | grep 'sqlite3_step '

VARIANT: pk-ready (the real schema: PRIMARY KEY (job, key) and the two partial due_at indexes),
pk (no due_at indexes), ready (no primary key), none (bare table). WHAT: ins (INSERTs only) or
both (INSERTs, then the completion UPDATEs by rowid). Uses Python's sqlite3 module, which links
the same Debian libsqlite3 as the sink (check with ldd). Writes /tmp/topicflow-floor.db.
"""
import sqlite3, sys, os
variant = sys.argv[1]
path = '/tmp/topicflow-floor.db'
for f in (path, path+'-wal', path+'-shm'):
    if os.path.exists(f): os.remove(f)
db = sqlite3.connect(path, isolation_level=None)
db.execute('PRAGMA journal_mode=WAL'); db.execute('PRAGMA synchronous=NORMAL')
pk = ", PRIMARY KEY(job,key)" if 'pk' in variant else ""
db.executescript("CREATE TABLE topics(job TEXT NOT NULL, key TEXT NOT NULL, payload BLOB, status TEXT NOT NULL CHECK (status = 'pending' OR status = 'running' OR status = 'completed' OR status = 'failed'), attempts INTEGER NOT NULL DEFAULT 0, result BLOB, error TEXT, updated_at INTEGER NOT NULL, created_at INTEGER NOT NULL, submission TEXT, due_at INTEGER, dispatched_at INTEGER, worker TEXT%s);" % pk)
if 'ready' in variant:
    db.executescript("CREATE INDEX topics_timer ON topics(due_at) WHERE status = 'running' OR dispatched_at IS NOT NULL; CREATE INDEX topics_ready ON topics(due_at) WHERE status = 'pending' AND dispatched_at IS NULL;")
N=20000
ins1 = "INSERT INTO topics(job, key, payload, status, attempts, error, updated_at, created_at, submission, due_at, dispatched_at, worker) VALUES (?1, ?2, ?3, 'pending', 0, NULL, ?4, ?4, ?5, ?4, NULL, '')" + (" ON CONFLICT(job, key) DO NOTHING" if pk else "")
upd = "UPDATE topics SET status = 'completed', attempts = ?6, result = ?3, error = NULL, updated_at = ?4, due_at = NULL, dispatched_at = NULL, worker = ?5 WHERE rowid = ?7 AND job = ?1 AND key = ?2 AND status <> 'completed' AND status <> 'failed' AND attempts <= ?6"
what = sys.argv[2]
for b in range(0, N, 1000):
    db.execute('BEGIN IMMEDIATE')
    for i in range(b, b+1000):
        db.execute(ins1, ('bench', 'topic-%d' % i, b'payload', 1000, 's1'))
    db.execute('COMMIT')
if what == 'both':
  for b in range(0, N, 1000):
    db.execute('BEGIN IMMEDIATE')
    for i in range(b, b+1000):
        db.execute(upd, ('bench', 'topic-%d' % i, b'ok', 2000, 'worker-1', 1, i+1))
    db.execute('COMMIT')
