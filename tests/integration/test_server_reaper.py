"""The servers the tests start do not outlive a test process that dies without cleaning up
(reaper.py): a process that starts a server and is then SIGKILLed leaves no server process and no
directory behind."""
import os
import subprocess
import sys
import time

import pytest

import pgserver
import rgwserver

HERE = os.path.dirname(os.path.abspath(__file__))

# The child starts a server, prints its directory and the string naming its processes, then
# kills itself: no close(), no atexit, no finally.
CHILD = r'''
import os, signal, sys
sys.path.insert(0, sys.argv[1])
kind = sys.argv[2]
if kind == "pg":
    import pgserver
    s = pgserver.Server()
    s.psql("SELECT 1")
    print(s.dir, s.data, flush=True)
else:
    import rgwserver
    s = rgwserver.Server()
    print(s.dir, s.conf, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
'''


def procs_matching(text):
    found = []
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        try:
            with open(f'/proc/{p}/cmdline', 'rb') as f:
                if text.encode() in f.read():
                    found.append(int(p))
        except OSError:
            pass
    return found


def start_and_kill(kind):
    r = subprocess.run([sys.executable, '-c', CHILD, HERE, kind], capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == -9, f'child did not die by SIGKILL ({r.returncode}): {r.stderr}'
    d, marker = r.stdout.split()
    return d, marker


def wait_gone(d, marker, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(d) and not procs_matching(marker):
            return
        time.sleep(0.2)
    pytest.fail(f'left behind after its owner died: dir exists={os.path.exists(d)}, '
                f'processes={procs_matching(marker)}')


@pytest.mark.skipif(not pgserver.available(), reason='PostgreSQL server not installed')
def test_postgres_stopped_when_owner_is_killed():
    d, data = start_and_kill('pg')
    wait_gone(d, data)


@pytest.mark.skipif(os.geteuid() != 0 or not rgwserver.available(),
                    reason='Ceph/radosgw not installed, or not root')
def test_ceph_daemons_stopped_when_owner_is_killed():
    d, conf = start_and_kill('rgw')
    wait_gone(d, conf)
