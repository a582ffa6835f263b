"""A watchdog for the servers the tests start (pgserver.py, rgwserver.py).

Each server cleans up in close(). A test process that dies without getting there (SIGKILL, a
crash, a CI job cancelled) would leave the server running and its directory behind, and the next
run would find a stray postgres or ceph-osd. So each server also starts a reaper: a small process
of its own session that blocks on a pipe whose only write end the test process holds. The pipe
reaches EOF when the test process exits, however it exits; the reaper then stops what is left
and removes the directory. After a normal close() there is nothing left, and it just exits."""
import os
import subprocess
import sys

# Runs in the reaper: argv = [dir, pg_ctl-or-"", pgdata-or-"", run_as-or-"", match-or-""].
_SCRIPT = r'''
import os, shutil, signal, subprocess, sys, time
d, pg_ctl, pgdata, run_as, match = sys.argv[1:6]
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    try:
        if not os.read(0, 1):
            break
    except InterruptedError:
        continue
    except OSError:
        break
if not os.path.isdir(d):
    sys.exit(0)
if pg_ctl and os.path.exists(os.path.join(pgdata, 'postmaster.pid')):
    subprocess.run(['runuser', '-u', run_as, '--', pg_ctl, '-D', pgdata, '-m', 'immediate',
                    '-w', 'stop'], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
if match:
    me = os.getpid()
    for _ in range(3):
        left = []
        for p in os.listdir('/proc'):
            if not p.isdigit() or int(p) == me:
                continue
            try:
                with open(f'/proc/{p}/cmdline', 'rb') as f:
                    if match.encode() in f.read():
                        left.append(int(p))
            except OSError:
                pass
        if not left:
            break
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)
shutil.rmtree(d, ignore_errors=True)
'''


class Reaper:
    """Reaper(dir, pg=(pg_ctl, pgdata, run_as) or None, match=str or None): when this process
    exits, stop the PostgreSQL cluster pgdata, SIGKILL every process whose command line contains
    match, and remove dir. release() ends the watch (call it after a normal cleanup)."""

    def __init__(self, directory, pg=None, match=None):
        r, w = os.pipe()
        pg_ctl, pgdata, run_as = pg or ('', '', '')
        try:
            self.proc = subprocess.Popen(
                [sys.executable, '-c', _SCRIPT, directory, pg_ctl, pgdata, run_as, match or ''],
                stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True)
        finally:
            os.close(r)
        # the write end must not leak into other children (they would hold the pipe open)
        os.set_inheritable(w, False)
        self._w = w

    def release(self):
        if self._w is not None:
            os.close(self._w)
            self._w = None
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
