#!/usr/bin/python3
"""bench_shared.py [--build DIR] [--corpus DIR] [--files N] [--stats N]

The shared store (metadata in PostgreSQL) next to the embedded one (SQLite) and a plain directory,
measured side by side in one run on this machine (ratios within the run are what means anything):

  metadata   create + write 4 KiB + close of N small files, then stat of M paths (cycling over
             them), on a plain directory, a SQLite-backed mount and a PostgreSQL-backed mount;
             the daemon's CPU seconds beside the wall time.
  two nodes  two mounts of one PostgreSQL store (two local_dirs: how the tests stand in for two
             nodes), each writing its own 10-version run at the same time, then a flush of both;
             aggregate MB/s against one mount writing one run alone, and the stored bytes
             against the same two runs written into one SQLite store (target: ratio >= 99%).

Starts its own PostgreSQL server (initdb into a temporary directory, Unix socket only) and
unmounts and removes everything at the end. Needs root and /dev/fuse.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'integration'))
import pgserver  # noqa: E402
sys.path.insert(0, HERE)
from benchlib import cpu_of, daemon_pid  # noqa: E402



class Mounts:
    def __init__(self, build, base):
        self.build, self.base, self.mnts = build, base, []

    def mount(self, backing, name, opts=()):
        mnt = os.path.join(self.base, name)
        os.makedirs(mnt, exist_ok=True)
        args = [os.path.join(self.build, 'fs', 'mount.tpdefs'), backing, mnt]
        if opts:
            args += ['-o', ','.join(opts)]
        with open(os.path.join(self.base, name + '.log'), 'ab') as log:
            subprocess.run(args, check=True, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.mnts.append(mnt)
        return mnt

    def admin(self, *args):
        return subprocess.run([os.path.join(self.build, 'tools', 'tpdefs-admin'), *args],
                              check=True, capture_output=True, text=True).stdout

    def umount_all(self):
        for m in self.mnts:
            subprocess.run(['fusermount3', '-u', m], capture_output=True)
        self.mnts = []


def metadata(path, nfiles, nstats):
    data = os.urandom(4096)
    d = os.path.join(path, 'meta')
    os.makedirs(d, exist_ok=True)
    t0 = time.time()
    for i in range(nfiles):
        with open(os.path.join(d, f'f{i:05d}'), 'wb') as f:
            f.write(data)
    t1 = time.time()
    names = [os.path.join(d, f'f{i % nfiles:05d}') for i in range(nstats)]
    for p in names:
        os.stat(p)
    t2 = time.time()
    return t1 - t0, t2 - t1


def write_run(mnt, sub, files):
    os.makedirs(os.path.join(mnt, sub), exist_ok=True)
    for f in files:
        shutil.copyfile(f, os.path.join(mnt, sub, os.path.basename(f)))


def stored_bytes(m, backing):
    import json
    st = json.loads(m.admin('stats', backing, '--json'))
    return st['stored_bytes'] if 'stored_bytes' in st else st['totals']['stored_bytes']


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', default=os.path.join(HERE, '..', 'build-release'))
    ap.add_argument('--corpus', default='/var/tmp/corpus/full/gpt_bf16_st')
    ap.add_argument('--files', type=int, default=1000)
    ap.add_argument('--stats', type=int, default=10000)
    a = ap.parse_args()
    run = sorted(os.path.join(a.corpus, f) for f in os.listdir(a.corpus))[:10]
    logical = sum(os.path.getsize(f) for f in run)
    base = tempfile.mkdtemp(prefix='bench_shared.', dir='/var/tmp')
    os.chmod(base, 0o755)  # the PostgreSQL server runs as user postgres
    pg = pgserver.Server(base)
    m = Mounts(a.build, base)
    try:
        # ---- metadata ----
        rows = []
        plain = os.path.join(base, 'plain')
        os.makedirs(plain)
        w, s = metadata(plain, a.files, a.stats)
        rows.append(('plain directory', w, s, None))
        mnt = m.mount(os.path.join(base, 'sqlite-backing'), 'sqlite-mnt')
        c0 = cpu_of(daemon_pid(mnt))
        w, s = metadata(mnt, a.files, a.stats)
        rows.append(('tpdefs, SQLite store', w, s, cpu_of(daemon_pid(mnt)) - c0))
        pg.createdb('meta')
        m.admin('format', pg.uri('meta'), '--blobs', os.path.join(base, 'blobs-meta'))
        mnt = m.mount(pg.uri('meta'), 'pg-mnt', [f'local_dir={base}/pg-local'])
        c0 = cpu_of(daemon_pid(mnt))
        w, s = metadata(mnt, a.files, a.stats)
        rows.append(('tpdefs, PostgreSQL store', w, s, cpu_of(daemon_pid(mnt)) - c0))
        m.umount_all()
        print(f'metadata: {a.files} x (create + write 4 KiB + close), then {a.stats} stats')
        print('| store | create+write+close | per file | stat | per stat | daemon CPU s |')
        print('|---|--:|--:|--:|--:|--:|')
        for name, w, s, cpu in rows:
            print(f'| {name} | {w:.2f} s | {w / a.files * 1e3:.2f} ms | {s:.2f} s | '
                  f'{s / a.stats * 1e6:.0f} us | {"" if cpu is None else f"{cpu:.2f}"} |')
        # ---- two nodes ----
        pg.createdb('two')
        uri = pg.uri('two')
        m.admin('format', uri, '--blobs', os.path.join(base, 'blobs-two'))
        na = m.mount(uri, 'node-a', [f'local_dir={base}/local-a'])
        t0 = time.time()
        write_run(na, 'alone', run)
        m.admin('flush', uri)
        t_one = time.time() - t0
        nb = m.mount(uri, 'node-b', [f'local_dir={base}/local-b'])
        t0 = time.time()
        th = [threading.Thread(target=write_run, args=(na, 'run-a', run)),
              threading.Thread(target=write_run, args=(nb, 'run-b', run))]
        for t in th:
            t.start()
        for t in th:
            t.join()
        m.admin('flush', uri)
        t_two = time.time() - t0
        for sub, mnt in (('run-a', na), ('run-b', nb), ('alone', na)):
            for f in run:
                with open(f, 'rb') as x, open(os.path.join(mnt, sub, os.path.basename(f)), 'rb') as y:
                    assert x.read() == y.read(), (sub, f)
        shutil.rmtree(os.path.join(na, 'alone'))
        pg_stored = stored_bytes(m, uri)
        m.umount_all()
        sq = os.path.join(base, 'sqlite-two')
        ms = m.mount(sq, 'sqlite-two-mnt')
        write_run(ms, 'run-a', run)
        write_run(ms, 'run-b', run)
        m.admin('flush', sq)
        sq_stored = stored_bytes(m, sq)
        m.umount_all()
        print()
        print(f'two nodes: {len(run)}-version run of {os.path.basename(a.corpus)} '
              f'({logical / 1e6:.1f} MB) per node')
        print('| figure | value |')
        print('|---|--:|')
        print(f'| one node alone: write + flush | {logical / t_one / 1e6:.0f} MB/s |')
        print(f'| two nodes at once: write + flush, aggregate | {2 * logical / t_two / 1e6:.0f} MB/s '
              f'({2 * logical / t_two / (logical / t_one):.2f}x one node) |')
        print(f'| stored ratio, PostgreSQL store (two runs) | {2 * logical / pg_stored:.3f} |')
        print(f'| stored ratio, SQLite store (same two runs) | {2 * logical / sq_stored:.3f} |')
        print(f'| PostgreSQL / SQLite | {sq_stored / pg_stored * 100:.1f}% (target >= 99%) |')
    finally:
        m.umount_all()
        pg.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == '__main__':
    main()
