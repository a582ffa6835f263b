#!/usr/bin/env python3
"""with_rgw.py PROGRAM [ARGS...]: run PROGRAM against a real radosgw started for it.

Starts a throwaway Ceph cluster with radosgw (rgwserver.py), runs PROGRAM with
  TPDEFS_TEST_S3_ENDPOINT  http://127.0.0.1:<port>
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY  the S3 user created for this run
  TPDEFS_TEST_RGW_CTL      a Unix socket taking one command per connection (fault tests):
                             stop        stop radosgw (the endpoint refuses connections)
                             start       start it again and wait until it answers
                             start_in S  start it S seconds from now, answer at once
                             key_add AK SK  give the S3 user one more key (credential tests)
                             key_rm AK      take that key away again (its requests get 403)
                           each answered with "ok" or "error <reason>"
then stops the cluster and exits with PROGRAM's exit status. One cluster per PROGRAM run: a
start costs ~1-2 s. A cluster that does not come up is a failure (exit 2, with the log tail),
never a skip.
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgwserver  # noqa: E402


class Control:
    """The control socket's server: one thread, commands run one at a time."""

    def __init__(self, server, path):
        self.server = server
        self.path = path
        self.lock = threading.Lock()
        self.timers = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _do(self, cmd, *args):
        with self.lock:
            if cmd == 'key_add' and len(args) == 2:
                self.server.add_key(*args)
            elif cmd == 'key_rm' and len(args) == 1:
                self.server.remove_key(*args)
            elif args:
                raise ValueError(f'bad command {cmd!r}')
            elif cmd == 'stop':
                self.server.stop_rgw()
            elif cmd == 'start':
                if 'rgw' not in self.server.procs:
                    self.server.start_rgw()
            else:
                raise ValueError(f'unknown command {cmd!r}')

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    words = conn.makefile().readline().split()
                    if len(words) == 2 and words[0] == 'start_in':
                        t = threading.Timer(float(words[1]), self._do, args=('start',))
                        t.start()
                        self.timers.append(t)
                    elif words:
                        self._do(*words)
                    else:
                        raise ValueError('bad command')
                    conn.sendall(b'ok\n')
                except Exception as e:  # the test reads the reason
                    conn.sendall(f'error {e}\n'.encode())

    def close(self):
        for t in self.timers:
            t.join()
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def main():
    # meson's timeout sends SIGTERM: unwind through the finally below so the cluster (in its own
    # session, out of reach of a signal to our group) is stopped and its directory removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        srv = rgwserver.Server()
    except Exception as e:
        print(f'with_rgw: the radosgw test cluster did not start: {e}', file=sys.stderr)
        return 2
    print(f'with_rgw: radosgw up at {srv.endpoint} in {time.monotonic() - t0:.1f} s',
          file=sys.stderr)
    ctl = None
    try:
        ctl = Control(srv, os.path.join(srv.dir, 'ctl.sock'))
        env = dict(os.environ)
        env.update({'TPDEFS_TEST_S3_ENDPOINT': srv.endpoint,
                    'AWS_ACCESS_KEY_ID': srv.access_key,
                    'AWS_SECRET_ACCESS_KEY': srv.secret_key,
                    'TPDEFS_TEST_RGW_CTL': ctl.path})
        for k in ('AWS_SESSION_TOKEN', 'AWS_PROFILE', 'TPDEFS_S3_RETRY_S'):
            env.pop(k, None)
        rc = subprocess.call(sys.argv[1:], env=env)
        if rc != 0:
            print(f'with_rgw: {sys.argv[1]} exited {rc}; cluster log tail:\n{srv.log_tail(8)}',
                  file=sys.stderr)
        return rc if rc >= 0 else 128 - rc
    finally:
        if ctl:
            ctl.close()
        srv.close()


if __name__ == '__main__':
    sys.exit(main())
