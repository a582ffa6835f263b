"""Durability mechanism against a machine crash, checked with strace on the daemon: when a client's
fsync/close/create/rename returns, the staging file (and its directory entry) and the SQLite WAL
have been fsynced; an encoded object is fsynced, renamed into place and its directory fsynced
before the database points at it. (A machine crash itself cannot be simulated here.)"""
import os
import re
import shutil
import subprocess
import time

import pytest

import tpdefs_harness as H
from test_rel_00_util import seeded

LINE = re.compile(r'^(\d+)\s+(\d+\.\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)')
# a call interrupted in the log by another thread's: "TID T name(args <unfinished ...>", its
# result follows later as "TID T <... name resumed>) = R"
UNFIN = re.compile(r'^(\d+)\s+(\d+\.\d+)\s+(\w+)\((.*)\s*<unfinished \.\.\.>')
RESUMED = re.compile(r'^(\d+)\s+(\d+\.\d+)\s+<\.\.\. (\w+) resumed>.*\)\s+=\s+(-?\d+)')


class Tracer:
    def __init__(self, pid, log):
        self.log = log
        tids = [int(t) for t in os.listdir(f'/proc/{pid}/task')]
        args = ['strace', '-f', '-ttt', '-y', '-o', log, '-e',
                'trace=fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat,sync_file_range']
        for t in tids:
            args += ['-p', str(t)]
        self.p = subprocess.Popen(args, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stdin=subprocess.DEVNULL)
        # wait until every thread is traced (TracerPid set), never blocking on strace itself
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.p.poll() is not None:
                pytest.skip(f'strace exited {self.p.returncode} (ptrace not permitted?)')
            if all(self._traced(pid, t) for t in tids):
                time.sleep(0.1)
                return
            time.sleep(0.05)
        self.stop()
        pytest.skip('strace did not attach to every daemon thread within 20 s')

    @staticmethod
    def _traced(pid, tid):
        try:
            with open(f'/proc/{pid}/task/{tid}/status') as f:
                for line in f:
                    if line.startswith('TracerPid:'):
                        return int(line.split()[1]) != 0
        except OSError:
            return True   # thread gone
        return False

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()   # strace detaches from the daemon on SIGTERM
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def events(self):
        """(start time, call, args, result) of every traced call."""
        out, pending = [], {}
        with open(self.log) as f:
            for line in f:
                mm = LINE.match(line)
                if mm:
                    out.append((float(mm.group(2)), mm.group(3), mm.group(4), int(mm.group(5))))
                    continue
                mm = UNFIN.match(line)
                if mm:
                    pending[(mm.group(1), mm.group(3))] = (float(mm.group(2)), mm.group(3),
                                                           mm.group(4))
                    continue
                mm = RESUMED.match(line)
                if mm and (mm.group(1), mm.group(3)) in pending:
                    t, name, args = pending.pop((mm.group(1), mm.group(3)))
                    out.append((t, name, args, int(mm.group(4))))
        return sorted(out)


def paths(ev):
    return re.findall(r'<([^>]*)>', ev[2]) + re.findall(r'"([^"]*)"', ev[2])


def syncs_of(events, t0, t1, pred):
    return [e for e in events if t0 <= e[0] <= t1 and e[1] in ('fsync', 'fdatasync') and
            e[3] == 0 and any(pred(p) for p in paths(e))]


@pytest.fixture
def traced(mounts):
    if shutil.which('strace') is None:
        pytest.skip('strace not installed')
    m = mounts.new('dur', opts=['debounce_ms=600000'])
    pids = H.daemon_pids(m.mnt)
    assert len(pids) == 1, pids
    t = Tracer(pids[0], os.path.join(mounts.base, 'strace.log'))
    try:
        yield m, t
    finally:
        t.stop()


def test_fsync_close_create_rename_are_durable(traced):
    m, tr = traced
    wal = lambda p: p.endswith('tpdefs.db-wal') or p.endswith('tpdefs.db')  # noqa: E731
    staging = lambda p: '/staging/' in p and not p.endswith('/staging')  # noqa: E731
    stagedir = lambda p: p.endswith('/staging')  # noqa: E731
    data = seeded('dur').randbytes(300_000)
    c0 = time.time()
    fd = os.open(m.p('f'), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    c1 = time.time()
    os.write(fd, data)
    f0 = time.time()
    os.fsync(fd)
    f1 = time.time()
    os.write(fd, data[:1000])
    k0 = time.time()
    os.close(fd)
    k1 = time.time()
    r0 = time.time()
    os.rename(m.p('f'), m.p('g'))
    r1 = time.time()
    dfd = os.open(m.mnt, os.O_RDONLY | os.O_DIRECTORY)
    d0 = time.time()
    os.fsync(dfd)
    d1 = time.time()
    os.close(dfd)
    time.sleep(0.3)
    tr.stop()
    ev = tr.events()
    assert ev, 'strace saw nothing'
    problems = []
    # create: the new inode/dentry rows and the staging file's directory entry are durable
    if not syncs_of(ev, c0, c1, wal):
        problems.append('create returned before the SQLite WAL was synced')
    if not syncs_of(ev, c0, c1, stagedir):
        problems.append('create returned before the staging directory was fsynced')
    # fsync: staging data first, then the size in the database
    s = syncs_of(ev, f0, f1, staging)
    w = syncs_of(ev, f0, f1, wal)
    if not s:
        problems.append('fsync returned before the staging file was fsynced')
    if not w:
        problems.append('fsync returned before the new size reached the WAL (synced)')
    if s and w and not min(e[0] for e in s) <= max(e[0] for e in w):
        problems.append('the size was committed before the staging data was synced')
    # close(2) of a written file: same promise as fsync
    if not syncs_of(ev, k0, k1, staging) or not syncs_of(ev, k0, k1, wal):
        problems.append('close returned before staging + WAL were synced')
    if not syncs_of(ev, r0, r1, wal):
        problems.append('rename returned before the WAL was synced')
    H.report(f'strace: {len(ev)} sync/rename/unlink calls traced; create {c1 - c0:.3f}s, '
             f'fsync {f1 - f0:.3f}s, close {k1 - k0:.3f}s, rename {r1 - r0:.3f}s, '
             f'fsync(dir) {d1 - d0:.3f}s')
    assert not problems, problems + [f'trace: {tr.log}']


def test_encode_installs_objects_durably(mounts):
    if shutil.which('strace') is None:
        pytest.skip('strace not installed')
    m = mounts.new('enc', opts=['debounce_ms=600000'])
    data = seeded('enc').randbytes(2 << 20)
    with open(m.p('f'), 'wb') as f:
        f.write(data)
    pid = H.daemon_pids(m.mnt)[0]
    tr = Tracer(pid, os.path.join(mounts.base, 'strace-enc.log'))
    try:
        m.flush()
        time.sleep(0.3)
    finally:
        tr.stop()
    ev = tr.events()
    obj = [e for e in ev if e[1] in ('fsync', 'fdatasync') and e[3] == 0 and
           any('/tmp/' in p for p in paths(e))]
    ren = [e for e in ev if e[1].startswith('rename') and e[3] == 0 and
           any(p.endswith('.tpdo') for p in paths(e))]
    objdir = [e for e in ev if e[1] in ('fsync', 'fdatasync') and e[3] == 0 and
              any(re.search(r'/objects(/[0-9a-f]+)?$', p) for p in paths(e))]
    wal = [e for e in ev if e[1] in ('fsync', 'fdatasync') and e[3] == 0 and
           any(p.endswith('tpdefs.db-wal') for p in paths(e))]
    unl = [e for e in ev if e[1].startswith('unlink') and e[3] == 0 and
           any('/staging/' in p or 'staging/' in p for p in paths(e))]
    assert obj, f'the object file was never fsynced (trace {tr.log})'
    assert ren, f'no rename of a finished object into place (trace {tr.log})'
    assert objdir, f'the objects directory was not fsynced after the rename (trace {tr.log})'
    assert wal, f'the object commit never synced the WAL (trace {tr.log})'
    t_obj, t_ren = obj[0][0], ren[0][0]
    t_dir = min(e[0] for e in objdir if e[0] >= t_ren) if any(e[0] >= t_ren for e in objdir) \
        else None
    assert t_obj <= t_ren, 'object renamed into place before it was fsynced'
    assert t_dir is not None, 'objects directory not fsynced after the rename'
    assert any(e[0] >= t_dir for e in wal), 'database commit not synced after the object install'
    if unl:
        assert min(e[0] for e in unl) >= min(e[0] for e in wal if e[0] >= t_dir), \
            'staging file removed before the object commit was durable'
    H.report('strace encode: object fsync -> rename -> objects dir fsync -> WAL sync'
             f'{" -> staging unlink" if unl else ""} (in that order)')
