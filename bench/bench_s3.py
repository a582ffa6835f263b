#!/usr/bin/python3
"""bench_s3.py [--build DIR] [--corpus DIR] [--versions N]

Blobs in an S3 bucket next to blobs in a shared directory and next to plain curl, measured side
by side in one run (ratios within the run are what means anything; the machine is shared):

  write    copy an N-version run into the mount and flush it (encode, upload, commit): MB/s of
           logical bytes; requests per GB written (from the daemon's own count at unmount).
  restore  cold: unmount, drop the node-local block cache and the page cache, mount, read every
           file once front to back: MB/s; requests per GB read.
  again    a second restore after a remount with the page cache dropped but the block cache
           kept: MB/s and the cache's hit rate.
  curl     the same files uploaded to and downloaded from the same RGW with curl --aws-sigv4,
           one request per file: the network/endpoint's own MB/s on this machine.
  stored   bytes in the bucket (objects/) against the logical bytes.

Starts its own PostgreSQL server and single-node Ceph cluster with radosgw (tests/integration/
pgserver.py, rgwserver.py) and removes everything at the end. Needs root and /dev/fuse.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'integration'))
import pgserver  # noqa: E402
import rgwserver  # noqa: E402
import s3util  # noqa: E402
sys.path.insert(0, HERE)
from benchlib import cpu_of, daemon_pid  # noqa: E402



def drop_caches():
    subprocess.run(['sync'])
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('3\n')


class Node:
    """One mount of a shared store: mount, unmount (collecting the daemon's CPU seconds and
    its closing report of S3 requests), in its own local_dir."""

    def __init__(self, build, base, uri, name):
        self.build, self.uri = build, uri
        self.mnt = os.path.join(base, name)
        self.local = os.path.join(base, name + '-local')
        self.log = os.path.join(base, name + '.log')
        os.makedirs(self.mnt, exist_ok=True)
        self.pid = None
        self.cpu = 0.0

    def mount(self):
        with open(self.log, 'ab') as log:
            subprocess.run([os.path.join(self.build, 'fs', 'mount.tpdefs'), self.uri, self.mnt,
                            '-o', f'local_dir={self.local}'], check=True, stdout=log, stderr=log,
                           stdin=subprocess.DEVNULL)
        self.pid = daemon_pid(self.mnt)
        self.cpu0 = cpu_of(self.pid)

    def unmount(self):
        """The daemon's CPU seconds while mounted, and its S3 counters (dict, or {})."""
        cpu = cpu_of(self.pid) - self.cpu0
        size = os.path.getsize(self.log)
        subprocess.run(['fusermount3', '-u', self.mnt], check=True)
        deadline = time.time() + 60
        while os.path.exists(f'/proc/{self.pid}') and time.time() < deadline:
            time.sleep(0.05)
        with open(self.log) as f:
            f.seek(size)
            tail = f.read()
        m = re.findall(r'blob cache: (.*)', tail)
        counts = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', m[-1])} if m else {}
        return cpu, counts

    def admin(self, *args):
        return subprocess.run([os.path.join(self.build, 'tools', 'tpdefs-admin'), *args],
                              check=True, capture_output=True, text=True).stdout


def write(node, run):
    t0 = time.time()
    for f in run:
        shutil.copyfile(f, os.path.join(node.mnt, os.path.basename(f)))
    node.admin('flush', node.uri)
    return time.time() - t0


def restore(node, run, clear_cache):
    if clear_cache:
        shutil.rmtree(os.path.join(node.local, 'blobcache'), ignore_errors=True)
    drop_caches()
    node.mount()
    t0 = time.time()
    for f in run:
        with open(os.path.join(node.mnt, os.path.basename(f)), 'rb') as x:
            while x.read(1 << 20):
                pass
    t = time.time() - t0
    for f in run:
        with open(f, 'rb') as x, open(os.path.join(node.mnt, os.path.basename(f)), 'rb') as y:
            assert x.read() == y.read(), f
    return t


def curl(rgw, bucket, run):
    auth = ['--aws-sigv4', 'aws:amz:us-east-1:s3', '--user', f'{rgw.access_key}:{rgw.secret_key}',
            '-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD', '-sS', '--fail']
    t0 = time.time()
    for f in run:
        subprocess.run(['curl', *auth, '-T', f,
                        f'{rgw.endpoint}/{bucket}/curl/{os.path.basename(f)}'], check=True)
    up = time.time() - t0
    drop_caches()
    t0 = time.time()
    for f in run:
        subprocess.run(['curl', *auth, '-o', '/dev/null',
                        f'{rgw.endpoint}/{bucket}/curl/{os.path.basename(f)}'], check=True)
    return up, time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', default=os.path.join(HERE, '..', 'build-release'))
    ap.add_argument('--corpus', default='/var/tmp/corpus/full/gpt_full_state')
    ap.add_argument('--versions', type=int, default=10)
    a = ap.parse_args()
    run = sorted(os.path.join(a.corpus, f) for f in os.listdir(a.corpus))[:a.versions]
    logical = sum(os.path.getsize(f) for f in run)
    base = tempfile.mkdtemp(prefix='bench_s3.', dir='/var/tmp')
    os.chmod(base, 0o755)  # the PostgreSQL server runs as user postgres
    pg = pgserver.Server(base)
    rgw = rgwserver.Server(base)
    os.environ['AWS_ACCESS_KEY_ID'] = rgw.access_key
    os.environ['AWS_SECRET_ACCESS_KEY'] = rgw.secret_key
    cli = s3util.Client(rgw.endpoint, rgw.access_key, rgw.secret_key)
    rows, nodes = [], []
    try:
        for kind in ('directory', 'bucket'):
            pg.createdb(kind)
            uri = pg.uri(kind)
            blobs = (os.path.join(base, 'blobs') if kind == 'directory' else
                     f's3://bench/tpdefs?endpoint={rgw.endpoint}')
            subprocess.run([os.path.join(a.build, 'tools', 'tpdefs-admin'), 'format', uri,
                            '--blobs', blobs], check=True, capture_output=True)
            n = Node(a.build, base, uri, kind)
            nodes.append(n)
            n.mount()
            tw = write(n, run)
            cw, sw = n.unmount()
            tr = restore(n, run, clear_cache=True)
            cr, sr = n.unmount()
            t2 = restore(n, run, clear_cache=False)
            c2, s2 = n.unmount()
            if kind == 'bucket':
                stored = sum(cli.sizes('bench', 'tpdefs/objects/').values())
            else:
                stored = sum(os.path.getsize(os.path.join(base, 'blobs', 'objects', f))
                             for f in os.listdir(os.path.join(base, 'blobs', 'objects')))
            rows.append((kind, tw, cw, sw, tr, cr, sr, t2, c2, s2, stored))
        up, down = curl(rgw, 'bench', run)
        gb = logical / 1e9
        print(f'{len(run)}-version run of {os.path.basename(a.corpus)}: {logical / 1e6:.1f} MB '
              f'logical; PostgreSQL metadata; blobs in a directory vs in RGW (127.0.0.1)')
        print('| blobs in | write+flush | daemon CPU s | requests/GB written | cold restore | '
              'daemon CPU s | GETs/GB read | warm-cache restore | cache hit rate | stored/logical |')
        print('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|')
        for kind, tw, cw, sw, tr, cr, sr, t2, c2, s2, stored in rows:
            req_w = (sw.get('puts', 0) + sw.get('gets', 0) + sw.get('heads', 0)) / gb if sw else 0
            hits, miss = s2.get('hits', 0), s2.get('misses', 0)
            hr = f'{hits / (hits + miss) * 100:.1f}%' if hits + miss else '-'
            print(f'| {kind} | {logical / tw / 1e6:.0f} MB/s | {cw:.1f} | '
                  f'{req_w:.0f} | {logical / tr / 1e6:.0f} MB/s | {cr:.1f} | '
                  f'{sr.get("gets", 0) / gb:.0f} | {logical / t2 / 1e6:.0f} MB/s | {hr} | '
                  f'{stored / logical * 100:.1f}% |')
        print(f'| curl (plain, one request per file) | up {logical / up / 1e6:.0f} MB/s | | '
              f'{len(run) / gb:.0f} | down {logical / down / 1e6:.0f} MB/s | | '
              f'{len(run) / gb:.0f} | | | 100.0% |')
        b = rows[1]
        print(f'\nbucket S3 counters: write {b[3]}\n  cold restore {b[6]}\n  warm restore {b[9]}')
    finally:
        for n in nodes:
            subprocess.run(['fusermount3', '-u', n.mnt], capture_output=True)
        rgw.close()
        pg.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == '__main__':
    main()
