"""A throwaway PostgreSQL server for the tests: initdb into a temporary directory as an unprivileged
user, listening on a Unix socket only (no TCP port), stopped and removed at the end. No mock: the
shared-store tests talk to a real server through libpq."""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

from reaper import Reaper

RUN_AS = 'postgres'   # created by Debian's postgresql package; initdb refuses to run as root


def _bindir():
    dirs = sorted(glob.glob('/usr/lib/postgresql/*/bin'))
    for d in reversed(dirs):
        if os.path.exists(os.path.join(d, 'initdb')):
            return d
    return None


def available():
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        return False
    return _bindir() is not None


class Server:
    """server.uri(db) -> a libpq URI for database db on this server (created on first use)."""

    def __init__(self, base=None):
        self.bin = _bindir()
        self.dir = tempfile.mkdtemp(prefix='tpdefs-pg-', dir=base)
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, 'data')
        self.sock = os.path.join(self.dir, 'sock')
        os.mkdir(self.sock)
        pw = pwd.getpwnam(RUN_AS)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chown(self.sock, pw.pw_uid, pw.pw_gid)
        # stops the cluster and removes dir if this process dies before close()
        self._reaper = Reaper(self.dir, pg=(os.path.join(self.bin, 'pg_ctl'), self.data, RUN_AS))
        self.log = os.path.join(self.dir, 'server.log')
        self._run([os.path.join(self.bin, 'initdb'), '-D', self.data, '-A', 'trust', '-U',
                   'postgres', '--no-sync', '-E', 'UTF8', '--locale=C'])
        # trust for the test's own superuser, a real password check for the role 'pwuser'
        with open(os.path.join(self.data, 'pg_hba.conf'), 'w') as f:
            f.write('local all pwuser scram-sha-256\nlocal all all trust\n')
        with open(os.path.join(self.data, 'postgresql.conf'), 'a') as f:
            f.write("listen_addresses = ''\n"
                    f"unix_socket_directories = '{self.sock}'\n"
                    "fsync = on\nmax_connections = 100\nshared_buffers = 32MB\n")
        self.start()

    def _run(self, argv, check=True):
        r = subprocess.run(['runuser', '-u', RUN_AS, '--'] + argv, capture_output=True, text=True,
                           cwd=self.dir, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise RuntimeError(f'{argv[0]} failed: {r.stdout}{r.stderr}')
        return r

    def start(self):
        self._run([os.path.join(self.bin, 'pg_ctl'), '-D', self.data, '-l', self.log, '-w',
                   '-t', '60', 'start'])

    def stop(self, mode='fast'):
        self._run([os.path.join(self.bin, 'pg_ctl'), '-D', self.data, '-m', mode, '-w', 'stop'],
                  check=False)

    def restart(self):
        self.stop()
        self.start()

    def psql(self, sql, db='postgres'):
        r = self._run([os.path.join(self.bin, 'psql'), '-h', self.sock, '-U', 'postgres', '-d', db,
                       '-v', 'ON_ERROR_STOP=1', '-qAt', '-c', sql])
        return r.stdout

    def createdb(self, name):
        self.psql(f'CREATE DATABASE "{name}"')

    def uri(self, db, user='postgres'):
        # libpq URI with a Unix-socket directory as host (percent-encoded path)
        host = self.sock.replace('/', '%2F')
        return f'postgresql://{user}@{host}/{db}'

    def close(self):
        self.stop('immediate')
        shutil.rmtree(self.dir, ignore_errors=True)
        self._reaper.release()
