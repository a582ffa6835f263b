"""mount.tpdefs command-line contract: refusals leave nothing mounted and say why."""
import os
import subprocess

import tpdefs_harness as H


def listing(d):
    out = {}
    for dp, dns, fns in os.walk(d):
        for n in fns:
            p = os.path.join(dp, n)
            with open(p, 'rb') as f:
                out[os.path.relpath(p, d)] = f.read()
        for n in dns:
            out[os.path.relpath(os.path.join(dp, n), d) + '/'] = None
    return out


def assert_refused(m, rc, out, what):
    assert rc != 0, f'{what}: mount.tpdefs exited 0 (should refuse)\n{out}'
    assert out.strip(), f'{what}: refused without a message on stderr'
    assert H.mounted_at(m.mnt) is None, f'{what}: {m.mnt} is mounted anyway'
    assert not H.daemon_pids(m.mnt), f'{what}: a daemon for {m.mnt} is still running'


def run_stderr(args, timeout=30):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def test_help():
    H.require_binaries()
    rc, out, err = run_stderr([H.MOUNT_BIN, '--help'])
    assert rc == 0, f'--help exited {rc}: {err}'
    text = out + err
    assert 'BACKING' in text.upper() or 'backing' in text.lower(), text
    for opt in ('cache_size', 'workers', 'max_chain'):
        assert opt in text, f'--help does not mention -o {opt}:\n{text}'


def test_refuse_foreign_nonempty_backing(mounts):
    base = mounts.localdir('foreign')
    os.makedirs(os.path.join(base, 'project', 'src'))
    with open(os.path.join(base, 'notes.txt'), 'wb') as f:
        f.write(b'my precious data\n')
    with open(os.path.join(base, 'project', 'src', 'main.c'), 'wb') as f:
        f.write(b'int main(void){return 0;}\n')
    before = listing(base)
    m = mounts.new('foreign', backing=base, mount=False)
    H.require_binaries()
    rc, _, err = run_stderr([H.MOUNT_BIN, base, m.mnt])
    assert_refused(m, rc, err, 'foreign backing dir')
    assert listing(base) == before, 'the foreign backing dir was modified'


def test_refuse_second_mount_of_same_backing(mounts):
    a = mounts.new('first')
    with open(a.p('f'), 'wb') as f:
        f.write(b'hello')
    b = mounts.new('second', backing=a.backing, mount=False)
    rc, _, err = run_stderr([H.MOUNT_BIN, a.backing, b.mnt])
    assert_refused(b, rc, err, 'backing already served')
    # the first mount is unaffected
    with open(a.p('f'), 'rb') as f:
        assert f.read() == b'hello'
    a.flush()
    a.remount()   # after a clean unmount the backing dir can be mounted again
    with open(a.p('f'), 'rb') as f:
        assert f.read() == b'hello'


def test_refuse_unknown_option(mounts):
    m = mounts.new('opt', mount=False)
    H.require_binaries()
    for opts in ('no_such_option', 'workers=2,bogus=1', 'cache_size=lots', 'workers=-3',
                 'max_chain=abc'):
        rc, _, err = run_stderr([H.MOUNT_BIN, m.backing, m.mnt, '-o', opts])
        assert_refused(m, rc, err, f'-o {opts}')


def test_refuse_bad_mountpoint(mounts):
    m = mounts.new('badmp', mount=False)
    H.require_binaries()
    missing = os.path.join(mounts.base, 'does', 'not', 'exist')
    rc, _, err = run_stderr([H.MOUNT_BIN, m.backing, missing])
    assert rc != 0 and err.strip(), f'missing mountpoint: rc {rc}, stderr {err!r}'
    assert H.mounted_at(missing) is None
    afile = os.path.join(mounts.base, 'a-file')
    with open(afile, 'wb') as f:
        f.write(b'x')
    rc, _, err = run_stderr([H.MOUNT_BIN, m.backing, afile])
    assert rc != 0 and err.strip(), f'file as mountpoint: rc {rc}, stderr {err!r}'
    assert H.mounted_at(afile) is None
    rc, _, err = run_stderr([H.MOUNT_BIN, m.backing])
    assert rc != 0 and err.strip(), f'no mountpoint argument: rc {rc}, stderr {err!r}'


def test_options_accepted(mounts):
    m = mounts.new('opts', opts=['workers=1', 'max_chain=4', 'cache_size=16M', 'allow_other',
                                 'default_permissions'])
    data = os.urandom(300_000)
    with open(m.p('f'), 'wb') as f:
        f.write(data)
    m.flush()
    m.remount()
    with open(m.p('f'), 'rb') as f:
        assert f.read() == data


def test_missing_backing_is_initialised(mounts):
    m = mounts.new('fresh', backing=os.path.join(mounts.base, 'new-store'), mount=False)
    assert not os.path.exists(m.backing)
    m.mount()
    assert os.path.isdir(m.backing)
    assert os.listdir(m.mnt) == []
    m.unmount()
    assert os.listdir(m.backing), 'backing dir left empty after initialisation'


def test_read_only_mount(mounts):
    m = mounts.new('ro')
    with open(m.p('f'), 'wb') as f:
        f.write(b'keep')
    m.flush()
    m.unmount()
    m.opts = ['ro']
    m.mount()
    with open(m.p('f'), 'rb') as f:
        assert f.read() == b'keep'
    import errno
    for fn in (lambda: open(m.p('f'), 'wb'), lambda: open(m.p('new'), 'wb'),
               lambda: os.mkdir(m.p('d')), lambda: os.unlink(m.p('f'))):
        try:
            fn()
        except OSError as e:
            assert e.errno == errno.EROFS, e
        else:
            raise AssertionError('write succeeded on a ro mount')
