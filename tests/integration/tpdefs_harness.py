"""Shared harness for the FUSE integration and PyTorch client suites.

Mounts a real tpdefs filesystem with the built mount.tpdefs and guarantees that every mount made by
a test is unmounted again (fusermount3 -u with retries, lazy unmount as last resort), even when the
test fails. Imported by tests/integration/conftest.py and tests/python/conftest.py.
"""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get('TPDEFS_BUILD') or os.path.join(SRC_ROOT, 'build')
MOUNT_BIN = os.path.join(BUILD, 'fs', 'mount.tpdefs')
ADMIN_BIN = os.path.join(BUILD, 'tools', 'tpdefs-admin')
CORPUS = os.environ.get('TPDEFS_CORPUS') or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'shared', 'corpus', 'sample')

MOUNT_TIMEOUT = 30      # mount.tpdefs must return once the mount is ready
FLUSH_TIMEOUT = 180     # tpdefs-admin flush waits for the encoder
EXIT_TIMEOUT = 30       # daemon exit after unmount


def fuse_available():
    return os.path.exists('/dev/fuse') and shutil.which('fusermount3') is not None


def require_binaries():
    """Missing binaries are a failure (the daemon is part of the build), not a skip."""
    for b in (MOUNT_BIN,):
        if not os.access(b, os.X_OK):
            pytest.fail(f'{b} not built (TPDEFS_BUILD={BUILD})', pytrace=False)


def _unescape_mountinfo(s):
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(s):
        if s[i] == '\\' and len(s[i + 1:i + 4]) == 3 and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return ''.join(out)


def mounted_at(path):
    """Mount entry (fstype, source) for exactly this mount point, or None. Does not stat the
    path, so it also works when the daemon has died (ENOTCONN)."""
    path = os.path.realpath(path)
    with open('/proc/self/mountinfo') as f:
        for line in f:
            parts = line.split()
            if len(parts) < 10:
                continue
            mp = _unescape_mountinfo(parts[4])
            if mp == path:
                sep = parts.index('-')
                return parts[sep + 1], parts[sep + 2]
    return None


def mounts_under(prefix):
    """Mount points at or below prefix (to catch mounts a failed refusal test left behind)."""
    prefix = os.path.realpath(prefix)
    out = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5:
                mp = _unescape_mountinfo(parts[4])
                if mp == prefix or mp.startswith(prefix + '/'):
                    out.append(mp)
    return out


def daemon_pids(mountpoint):
    """Pids of mount.tpdefs processes serving this mount point (found by argv, our own daemons)."""
    mountpoint = os.path.realpath(mountpoint)
    pids = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/cmdline', 'rb') as f:
                argv = f.read().split(b'\0')
        except OSError:
            continue
        if not argv or not argv[0]:
            continue
        if os.path.basename(argv[0]) != b'mount.tpdefs':
            continue
        args = [os.path.realpath(a.decode(errors='replace')) for a in argv[1:] if a]
        if mountpoint in args:
            pids.append(int(d))
    return pids


def pid_alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            st = f.read()
        return st.rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def sha256_file(path, bufsize=1 << 20):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            b = f.read(bufsize)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def du_bytes(path):
    """`du -sb` of a directory (apparent sizes, what the issue's Done-means measures)."""
    out = subprocess.run(['du', '-sb', path], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    return int(out.split()[0])


def du_alloc_bytes(path):
    """`du -s --block-size=1` (allocated blocks, i.e. st_blocks)."""
    out = subprocess.run(['du', '-s', '--block-size=1', path], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    return int(out.split()[0])


REPORT = []


def report(line):
    """A line for the end-of-run summary (ratios, timings), shown even with -q."""
    REPORT.append(line)
    print(line)


def terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section('tpdefs measurements')
        for line in REPORT:
            terminalreporter.write_line(line)


class MountError(Exception):
    pass


class Mount:
    """One tpdefs mount: BACKING and MOUNTPOINT under a private temp dir."""

    def __init__(self, base, name='m', backing=None, opts=None):
        self.base = base
        self.backing = backing or os.path.join(base, name + '-backing')
        self.mnt = os.path.join(base, name + '-mnt')
        self.log = os.path.join(base, name + '-daemon.log')
        self.opts = list(opts or [])
        self.pids = []
        self.all_pids = set()
        os.makedirs(self.mnt, exist_ok=True)

    # -- paths -------------------------------------------------------------------------------------
    def p(self, *parts):
        return os.path.join(self.mnt, *parts)

    # -- mount / unmount ---------------------------------------------------------------------------
    def run_mount(self, extra_args=None, mnt=None, backing=None, timeout=MOUNT_TIMEOUT):
        """Run mount.tpdefs; returns (rc, output). Output goes to a file, never a pipe: the
        backgrounded daemon inherits it and a pipe would never reach EOF."""
        args = [MOUNT_BIN, backing or self.backing, mnt or self.mnt]
        if self.opts:
            args += ['-o', ','.join(self.opts)]
        args += list(extra_args or [])
        with open(self.log, 'ab') as lf:
            lf.write(('\n$ ' + ' '.join(args) + '\n').encode())
            lf.flush()
            start = lf.tell()
            r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf,
                               timeout=timeout)
        with open(self.log, 'rb') as lf:
            lf.seek(start)
            out = lf.read().decode(errors='replace')
        return r.returncode, out

    def mount(self):
        require_binaries()
        rc, out = self.run_mount()
        if rc != 0:
            raise MountError(f'mount.tpdefs exited {rc}: {out.strip()}')
        if not mounted_at(self.mnt):
            raise MountError(f'mount.tpdefs returned 0 but {self.mnt} is not mounted: {out}')
        self.pids = daemon_pids(self.mnt)
        self.all_pids.update(self.pids)
        os.stat(self.mnt)  # ready means usable now
        return self

    def alive(self):
        """True when mounted and the daemon answers."""
        if not mounted_at(self.mnt):
            return False
        try:
            os.stat(self.mnt)
            return True
        except OSError:
            return False

    def unmount(self):
        """Clean unmount; waits for the daemon to exit. Raises if that is not possible."""
        if not mounted_at(self.mnt):
            self._wait_exit()
            return
        last = ''
        for i in range(12):
            r = subprocess.run(['fusermount3', '-u', self.mnt], capture_output=True, text=True,
                               timeout=30)
            if r.returncode == 0 or not mounted_at(self.mnt):
                break
            last = r.stderr
            time.sleep(0.1 * (i + 1))
        else:
            raise MountError(f'fusermount3 -u {self.mnt} failed: {last}')
        self._wait_exit()

    def _wait_exit(self):
        deadline = time.time() + EXIT_TIMEOUT
        while time.time() < deadline:
            if not any(pid_alive(p) for p in self.pids):
                self.pids = []
                return
            time.sleep(0.05)
        raise MountError(f'daemon {self.pids} still running {EXIT_TIMEOUT}s after unmount')

    def remount(self):
        self.unmount()
        return self.mount()

    def force_cleanup(self):
        """Last-resort teardown: never leaves a mount behind. Returns a list of problems."""
        problems = []
        if mounted_at(self.mnt):
            self.all_pids.update(daemon_pids(self.mnt))
            self.pids = sorted(set(self.pids) | set(daemon_pids(self.mnt)))
            try:
                self.unmount()
            except Exception as e:  # noqa: BLE001 - teardown must go on
                problems.append(str(e))
            if mounted_at(self.mnt):
                subprocess.run(['fusermount3', '-u', '-z', self.mnt], capture_output=True,
                               timeout=30)
                if mounted_at(self.mnt):
                    subprocess.run(['umount', '-l', self.mnt], capture_output=True, timeout=30)
                problems.append('needed a lazy unmount')
        # Daemons we started that outlive their mount would hold the backing dir.
        for pid in list(self.all_pids):
            deadline = time.time() + 10
            while pid_alive(pid) and time.time() < deadline:
                time.sleep(0.05)
            if pid_alive(pid):
                problems.append(f'daemon {pid} did not exit after unmount; killed')
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
        return problems

    # -- admin -------------------------------------------------------------------------------------
    def admin(self, *args, timeout=FLUSH_TIMEOUT):
        return subprocess.run([ADMIN_BIN, *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def flush(self):
        if not os.access(ADMIN_BIN, os.X_OK):
            pytest.fail(f'{ADMIN_BIN} not built', pytrace=False)
        t = time.time()
        r = self.admin('flush', self.backing)
        assert r.returncode == 0, f'tpdefs-admin flush {self.backing} exited {r.returncode}: ' \
                                  f'{r.stdout}{r.stderr}'
        return time.time() - t

    def stats(self):
        """Parsed `tpdefs-admin stats BACKING --json`, or pytest.skip when not implemented yet."""
        if not os.access(ADMIN_BIN, os.X_OK):
            pytest.skip('tpdefs-admin not built')
        r = self.admin('stats', self.backing, '--json', timeout=120)
        text = r.stdout + r.stderr
        if r.returncode == 2 or 'unknown command' in text.lower():
            pytest.skip(f'tpdefs-admin stats not implemented yet (exit {r.returncode}: '
                        f'{text.strip()[:200]})')
        assert r.returncode == 0, f'tpdefs-admin stats exited {r.returncode}: {text}'
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise AssertionError(f'stats --json is not one JSON object: {e}: {r.stdout[:500]}')

    def read_log(self):
        try:
            with open(self.log, 'rb') as f:
                return f.read().decode(errors='replace')
        except OSError:
            return ''


_pg = None


def shared_backing(base, name):
    """A formatted shared store (PostgreSQL metadata) for a test run with TPDEFS_ENGINE=pg:
    (URI, local_dir). One server for the whole run, stopped at exit."""
    global _pg
    import atexit
    import pgserver
    if _pg is None:
        os.chmod(base, 0o755)
        _pg = pgserver.Server()
        atexit.register(_pg.close)
    db = 'db_' + ''.join(c if c.isalnum() else '_' for c in os.path.basename(base) + '_' + name)
    _pg.createdb(db)
    uri = _pg.uri(db)
    blobs = os.path.join(base, name + '-blobs')
    r = subprocess.run([ADMIN_BIN, 'format', uri, '--blobs', blobs], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise MountError(f'tpdefs-admin format {uri}: {r.stdout}{r.stderr}')
    local = os.path.join(base, name + '-local')
    return uri, local


class MountFactory:
    """Creates mounts under one temp dir and tears all of them down."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix='tpdefs-test-', dir='/tmp')
        self.mounts = []

    def new(self, name=None, opts=None, backing=None, mount=True):
        name = name or f'm{len(self.mounts)}'
        if backing is None and os.environ.get('TPDEFS_ENGINE') == 'pg':
            # the same test against the shared store: a fresh database on the suite's server
            backing, local = shared_backing(self.base, name)
            opts = list(opts or []) + [f'local_dir={local}']
        m = Mount(self.base, name=name, opts=opts, backing=backing)
        self.mounts.append(m)
        if mount:
            m.mount()
        return m

    def localdir(self, name):
        d = os.path.join(self.base, name)
        os.makedirs(d, exist_ok=True)
        return d

    def teardown(self):
        """Returns (problems, daemon_died). Removes the temp dir only when nothing is mounted."""
        problems, died = [], []
        for m in self.mounts:
            if mounted_at(m.mnt) and not m.alive():
                died.append(m.mnt)
            problems += m.force_cleanup()
        for mp in mounts_under(self.base):
            # something got mounted where no Mount expected it (e.g. a refusal that was not)
            pids = daemon_pids(mp)
            for args in (['fusermount3', '-u', mp], ['fusermount3', '-u', '-z', mp],
                         ['umount', '-l', mp]):
                if not mounted_at(mp):
                    break
                subprocess.run(args, capture_output=True, timeout=30)
            problems.append(f'unexpected mount at {mp} removed')
            deadline = time.time() + 10
            while any(pid_alive(p) for p in pids) and time.time() < deadline:
                time.sleep(0.05)
        logs = '\n'.join(f'--- {m.log}\n{m.read_log()}' for m in self.mounts)
        if not mounts_under(self.base) and not os.environ.get('TPDEFS_KEEP'):
            shutil.rmtree(self.base, ignore_errors=True)
        return problems, died, logs


def make_factory_fixture():
    """Generator body shared by the suites' fixtures."""
    if not fuse_available():
        pytest.skip('/dev/fuse or fusermount3 not available')
    fac = MountFactory()
    try:
        yield fac
    finally:
        problems, died, logs = fac.teardown()
        if logs.strip():
            print(logs[-20000:])
        if died:
            pytest.fail(f'daemon died during the test (mount not answering): {died}',
                        pytrace=False)
        if problems:
            pytest.fail('teardown: ' + '; '.join(problems), pytrace=False)
