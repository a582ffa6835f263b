"""A throwaway single-node Ceph cluster with radosgw for the S3 tests: one monitor, one OSD on the
memstore object store, radosgw on 127.0.0.1 only, everything in a temporary directory, stopped
and removed at the end. No mock: the S3 client talks to a real RGW.

Debian 12's packages (ceph-mon, ceph-osd, radosgw, ceph-common). Runs as root (the daemons keep
root's uid: no --setuser). Why these settings (measured):
- auth none + `ms mon client mode = crc`: no keyrings to manage; radosgw otherwise insists on
  cephx with the monitor.
- `paxos propose interval = 0.05`: radosgw creates its pools one by one at first start and waits
  for each map change (~1 s apiece with the default).
- `osd fast shutdown = false`: memstore only writes its data out at a clean shutdown.
- A cluster killed with SIGKILL cannot be restarted from its directory: start a fresh one.
"""
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

from reaper import Reaper

START_TIMEOUT = 60.0


def available():
    return all(shutil.which(b) for b in ('ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin',
                                         'monmaptool', 'ceph'))


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on now (the daemon binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Server:
    """server.endpoint, server.access_key, server.secret_key once started; stop_rgw/start_rgw
    take radosgw alone down and up again (the endpoint unreachable, then back)."""

    def __init__(self, base=None):
        if os.geteuid() != 0:
            raise RuntimeError('rgwserver: the Ceph daemons are started as root (run as root)')
        self.dir = tempfile.mkdtemp(prefix='tpdefs-rgw-', dir=base)
        self.conf = os.path.join(self.dir, 'ceph.conf')
        # kills every daemon started with this conf and removes dir if this process dies first
        self._reaper = Reaper(self.dir, match=self.conf)
        self.logdir = os.path.join(self.dir, 'log')
        self.procs = {}
        self._deadline = None
        self.mon_port = free_port()
        self.rgw_port = free_port()
        self.endpoint = f'http://127.0.0.1:{self.rgw_port}'
        # fixed for this run, fresh each run: 20 upper-case alnum / 40 chars like AWS's keys
        self.access_key = 'TPDE' + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)[:40]
        # one deadline for the whole start: each step gets what is left of it
        self._deadline = time.monotonic() + START_TIMEOUT
        try:
            self._setup()
            self.start_rgw(timeout=max(1.0, self._deadline - time.monotonic()))
            self._create_user()
        except BaseException:
            self.close()
            raise
        self._deadline = None

    # -- helpers --------------------------------------------------------------------------------
    def _run(self, argv, timeout=60, check=True):
        if self._deadline is not None:
            timeout = min(timeout, max(1.0, self._deadline - time.monotonic()))
        try:
            r = subprocess.run(argv, capture_output=True, text=True, cwd=self.dir,
                               stdin=subprocess.DEVNULL, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f'rgwserver: {" ".join(argv)} did not finish within {timeout:.0f}'
                               f' s (the cluster did not come up)\n{self.log_tail()}') from None
        if check and r.returncode != 0:
            raise RuntimeError(f'rgwserver: {" ".join(argv)} failed ({r.returncode}):\n'
                               f'{r.stdout}{r.stderr}\n{self.log_tail()}')
        return r

    def _spawn(self, name, argv):
        out = open(os.path.join(self.logdir, name + '.out'), 'w')
        # -f: stay in the foreground so the process is ours to stop; own session so a signal to
        # the test runner's group does not reach it first.
        self.procs[name] = subprocess.Popen(argv + ['-f', '-c', self.conf], cwd=self.dir,
                                            stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        out.close()

    def _ceph(self, *args, timeout=30):
        return self._run(['ceph', '-c', self.conf, '--connect-timeout', '20'] + list(args),
                         timeout=timeout)

    def log_tail(self, lines=15):
        out = []
        if not os.path.isdir(self.logdir):
            return ''
        for f in sorted(os.listdir(self.logdir)):
            p = os.path.join(self.logdir, f)
            try:
                with open(p, errors='replace') as fh:
                    tail = fh.readlines()[-lines:]
            except OSError:
                continue
            if tail:
                out.append(f'--- {f} (last {len(tail)} lines)\n' + ''.join(tail))
        return '\n'.join(out)

    def _setup(self):
        fsid = str(uuid.uuid4())
        os.mkdir(self.logdir)
        os.mkdir(os.path.join(self.dir, 'run'))
        mon_data = os.path.join(self.dir, 'mon.a')
        osd_data = os.path.join(self.dir, 'osd.0')
        os.mkdir(osd_data)
        d = self.dir
        with open(self.conf, 'w') as f:
            f.write(f"""[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{self.mon_port}]
mon initial members = a
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
paxos propose interval = 0.05
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd objectstore = memstore
memstore device bytes = 2147483648
osd fast shutdown = false
osd crush chooseleaf type = 0
run dir = {d}/run
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
keyring = {d}/keyring
debug ms = 0
[mon.a]
mon data = {mon_data}
[osd.0]
osd data = {osd_data}
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{self.rgw_port}
rgw dns name = localhost
rgw thread pool size = 32
rgw data = {d}/rgw
""")
        monmap = os.path.join(d, 'monmap')
        self._run(['monmaptool', '--create', '--fsid', fsid, '--addv', 'a',
                   f'[v2:127.0.0.1:{self.mon_port}]', monmap])
        self._run(['ceph-mon', '-c', self.conf, '--mkfs', '-i', 'a', '--monmap', monmap])
        self._spawn('mon.a', ['ceph-mon', '-i', 'a'])
        osd_uuid = str(uuid.uuid4())
        r = self._ceph('osd', 'new', osd_uuid)
        osd_id = r.stdout.strip()
        if osd_id != '0':
            raise RuntimeError(f'rgwserver: expected osd id 0, got {osd_id!r}')
        self._run(['ceph-osd', '-c', self.conf, '-i', '0', '--mkfs', '--osd-uuid', osd_uuid])
        self._spawn('osd.0', ['ceph-osd', '-i', '0'])

    def _check_alive(self):
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f'rgwserver: {name} exited ({p.returncode})\n'
                                   f'{self.log_tail()}')

    def _answers(self):
        try:
            urllib.request.urlopen(self.endpoint + '/', timeout=2).read()
            return True
        except urllib.error.HTTPError:
            return True   # any HTTP reply (403 for an anonymous list) means it serves
        except (OSError, urllib.error.URLError):
            return False

    # -- radosgw --------------------------------------------------------------------------------
    def start_rgw(self, timeout=START_TIMEOUT):
        """Start radosgw and wait until it answers HTTP."""
        self._spawn('rgw', ['radosgw', '-n', 'client.rgw'])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if self._answers():
                return
            time.sleep(0.05)
        raise RuntimeError(f'rgwserver: radosgw did not answer on {self.endpoint} within '
                           f'{timeout:.0f} s\n{self.log_tail()}')

    def stop_rgw(self, sig=signal.SIGTERM):
        """Stop radosgw alone (the endpoint refuses connections until start_rgw)."""
        p = self.procs.pop('rgw', None)
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def kill_rgw(self):
        self.stop_rgw(signal.SIGKILL)

    def _create_user(self):
        self._run(['radosgw-admin', '-c', self.conf, '-n', 'client.rgw', 'user', 'create',
                   '--uid', 'tpdefs-test', '--display-name', 'tpdefs test',
                   '--access-key', self.access_key, '--secret', self.secret_key])

    def add_key(self, access_key, secret_key):
        """Give the test user one more S3 key (its buckets are reachable with any of them)."""
        self._run(['radosgw-admin', '-c', self.conf, '-n', 'client.rgw', 'key', 'create',
                   '--uid', 'tpdefs-test', '--key-type', 's3', '--access-key', access_key,
                   '--secret', secret_key])

    def remove_key(self, access_key):
        """Take one S3 key away from the test user: requests signed with it get 403."""
        self._run(['radosgw-admin', '-c', self.conf, '-n', 'client.rgw', 'key', 'rm',
                   '--uid', 'tpdefs-test', '--key-type', 's3', '--access-key', access_key])

    def close(self):
        # radosgw first (it talks to the OSD), then the OSD (clean stop), then the monitor
        for name in ('rgw', 'osd.0', 'mon.a'):
            p = self.procs.pop(name, None)
            if p is None or p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        self.procs = {}
        shutil.rmtree(self.dir, ignore_errors=True)
        self._reaper.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


if __name__ == '__main__':
    t0 = time.monotonic()
    s = Server()
    print(f'up in {time.monotonic() - t0:.2f} s: {s.endpoint} {s.access_key}')
    t1 = time.monotonic()
    s.stop_rgw()
    s.start_rgw()
    print(f'rgw restart {time.monotonic() - t1:.2f} s')
    s.close()
