"""tpdefs-admin gc / stats / verify and the mount(8) helper, against real mounts (sample corpus).

Run: TPDEFS_BUILD=build-x /usr/bin/python3 -m pytest tests/integration/test_admin.py
"""
import errno
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time

import pytest

import dbpages
import tpdefs_harness as H

SERIES = os.path.join(H.CORPUS, 'gpt_bf16_st')


def versions():
    names = sorted(n for n in os.listdir(SERIES) if n.endswith('.safetensors'))
    if len(names) < 10:
        pytest.skip(f'{SERIES} has fewer than 10 versions')
    return [os.path.join(SERIES, n) for n in names[:10]]


def admin(*args, timeout=300):
    return subprocess.run([H.ADMIN_BIN, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def write_series(m, srcs):
    for s in srcs:
        with open(s, 'rb') as f, open(m.p(os.path.basename(s)), 'wb') as g:
            g.write(f.read())
    m.flush()


def read_uncached(path):
    """Read through the daemon, not the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        return b''.join(chunks)
    finally:
        os.close(fd)


def objects_listing(backing):
    return sorted(os.listdir(os.path.join(backing, 'objects')))


# ---- gc while mounted, with readers --------------------------------------------------------------

def test_deleting_the_oldest_frees_at_once(mounts):
    """Reverse deltas: the oldest versions are the leaves of their chain, so deleting them (what
    save_total_limit does) frees their objects at once, with nothing left for gc."""
    srcs = versions()
    m = mounts.new('old')
    write_series(m, srcs)
    before = m.stats()
    for s in srcs[:8]:
        os.unlink(m.p(os.path.basename(s)))
    # an unlinked file's inode (and its object) lives until the kernel forgets it: ask it to
    deadline = time.time() + 20
    while True:
        with open('/proc/sys/vm/drop_caches', 'w') as f:
            f.write('2')
        st = m.stats()
        if st['objects'] <= 2 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert st['unreferenced_objects'] == 0, st
    assert st['objects'] == 2, (before['objects'], st['chains'])
    for s in srcs[8:]:
        assert H.sha256_file(m.p(os.path.basename(s))) == H.sha256_file(s)
    assert admin('verify', m.backing).returncode == 0


def test_gc_mounted_with_readers(mounts):
    srcs = versions()
    m = mounts.new('gc')
    write_series(m, srcs)
    # the newest versions: bases of the older ones (reverse deltas), so they stay, hidden
    for s in srcs[2:]:
        os.unlink(m.p(os.path.basename(s)))
    survivors = srcs[:2]
    want = {s: H.sha256_file(s) for s in survivors}
    logical = sum(os.path.getsize(s) for s in survivors)
    st = m.stats()
    assert st['unreferenced_objects'] >= 1, st
    du_before = H.du_bytes(m.backing)

    # dry run changes nothing
    before = objects_listing(m.backing)
    r = admin('gc', m.backing, '--dry-run')
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'would' in r.stdout, r.stdout
    assert objects_listing(m.backing) == before

    stop = threading.Event()
    bad, reads = [], [0]

    def reader():
        while not stop.is_set():
            for s in survivors:
                try:
                    data = read_uncached(m.p(os.path.basename(s)))
                except OSError as e:
                    bad.append(f'{s}: {e}')
                    continue
                if H.sha256_bytes(data) != want[s]:
                    bad.append(f'{s}: wrong bytes')
                reads[0] += 1

    th = [threading.Thread(target=reader) for _ in range(2)]
    for t in th:
        t.start()
    try:
        time.sleep(0.2)
        r = admin('gc', m.backing)
        time.sleep(0.2)
    finally:
        stop.set()
        for t in th:
            t.join()
    assert r.returncode == 0, r.stdout + r.stderr
    assert 're-encoded' in r.stdout, r.stdout
    assert not bad, bad[:5]
    assert reads[0] > 0
    for s in survivors:
        assert H.sha256_file(m.p(os.path.basename(s))) == want[s]
    v = admin('verify', m.backing)
    assert v.returncode == 0, v.stdout + v.stderr
    st = m.stats()
    assert st['unreferenced_objects'] == 0, st
    assert st['objects'] == 2, st
    du_mounted = H.du_bytes(m.backing)
    m.unmount()
    du_after = H.du_bytes(m.backing)
    H.report(f'gc: du -sb backing {du_before} (mounted, before gc) -> {du_mounted} (mounted, '
             f'after gc) -> {du_after} (unmounted); survivors logical {logical}; ratio du/logical '
             f'{du_after / logical:.3f}; {reads[0]} reads during gc')
    assert du_after <= 0.85 * logical, (du_after, logical)
    assert du_mounted <= 0.85 * logical, (du_mounted, logical)   # gc folds the WAL back
    v = admin('verify', m.backing)
    assert v.returncode == 0, v.stdout + v.stderr
    m.mount()
    for s in survivors:
        assert H.sha256_file(m.p(os.path.basename(s))) == want[s]


def test_gc_mounted_while_writing(mounts):
    """gc in the daemon while the encoder commits new versions: nothing lost, verify clean."""
    srcs = versions()
    m = mounts.new('gcw', opts=['debounce_ms=20'])
    write_series(m, srcs)
    for s in srcs[:6]:
        os.unlink(m.p(os.path.basename(s)))
    errs = []

    def writer():
        try:
            for r in range(3):
                for s in srcs:
                    with open(s, 'rb') as f, open(m.p(f'run{r}_' + os.path.basename(s)), 'wb') as g:
                        g.write(f.read())
        except OSError as e:
            errs.append(str(e))

    t = threading.Thread(target=writer)
    t.start()
    outs = []
    try:
        for _ in range(4):
            r = admin('gc', m.backing, '--max-chain', '3')
            outs.append(r.stdout + r.stderr)
            assert r.returncode in (0, 3), outs[-1]
    finally:
        t.join()
    assert not errs, errs
    m.flush()
    r = admin('gc', m.backing, '--max-chain', '3')
    assert r.returncode in (0, 3), r.stdout + r.stderr
    v = admin('verify', m.backing)
    assert v.returncode == 0, v.stdout + v.stderr
    for r_ in range(3):
        for s in srcs:
            assert H.sha256_file(m.p(f'run{r_}_' + os.path.basename(s))) == H.sha256_file(s)
    for s in srcs[6:]:
        assert H.sha256_file(m.p(os.path.basename(s))) == H.sha256_file(s)
    st = m.stats()
    assert max(e['depth'] for e in st['files'] if not e['staged']) <= 3 or \
        any(e['staged'] for e in st['files'])
    m.remount()
    assert admin('verify', m.backing).returncode == 0


# ---- corruption ----------------------------------------------------------------------------------

def test_verify_names_damaged_file_and_read_is_eio(mounts):
    srcs = versions()
    m = mounts.new('dmg')
    write_series(m, srcs[:3])
    st = m.stats()
    files = {e['path']: e for e in st['files']}
    # a file nothing depends on (the oldest once the newest is the keyframe)
    based = {e['base'] for e in st['files'] if e.get('base')}
    victim = next(e for e in st['files'] if e['path'] not in based)
    assert victim['object']
    m.unmount()
    assert admin('verify', m.backing).returncode == 0
    blob = os.path.join(m.backing, 'objects', '%016x.tpdo' % victim['object'])
    with open(blob, 'r+b') as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(size // 3)
        b = bytearray(f.read(64))
        f.seek(size // 3)
        f.write(bytes(x ^ 0xA5 for x in b))
    r = admin('verify', m.backing)
    assert r.returncode != 0, r.stdout
    assert f'DAMAGED {victim["path"]}' in r.stdout, r.stdout
    for p in files:
        if p != victim['path']:
            assert f'DAMAGED {p}\n' not in r.stdout, r.stdout
    m.mount()
    r = admin('verify', m.backing)   # mounted: read-only, same verdict
    assert r.returncode != 0 and f'DAMAGED {victim["path"]}' in r.stdout, r.stdout
    with pytest.raises(OSError) as ei:
        read_uncached(m.p(victim['path'].lstrip('/')))
    assert ei.value.errno == errno.EIO
    for s in srcs[:3]:
        if '/' + os.path.basename(s) != victim['path']:
            assert H.sha256_bytes(read_uncached(m.p(os.path.basename(s)))) == \
                H.sha256_file(s)


# ---- gc interrupted ------------------------------------------------------------------------------

@pytest.mark.parametrize('kill_at', ['progress', 're-encoded'])
def test_gc_killed_halfway_then_rerun(mounts, kill_at):
    srcs = versions()
    m = mounts.new('kill')
    write_series(m, srcs)
    for s in srcs[0:6:2]:           # holes in the chain: unreferenced bases
        os.unlink(m.p(os.path.basename(s)))
    survivors = [s for s in srcs if s not in srcs[0:6:2]]
    m.unmount()
    # --max-chain 2 on a depth-8 chain: many re-encodes; kill after the first one
    p = subprocess.Popen([H.ADMIN_BIN, 'gc', m.backing, '--max-chain', '2'],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         stdin=subprocess.DEVNULL)
    killed = False
    out = []
    try:
        for line in p.stdout:
            out.append(line)
            if line.startswith(kill_at):
                p.send_signal(signal.SIGKILL)
                killed = True
                break
    finally:
        if p.poll() is None and not killed:
            p.wait(timeout=300)
        p.wait(timeout=60)
    H.report(f'gc killed at first {kill_at!r} line: {"yes" if killed else "no (finished first)"}'
             f' after {len(out)} lines')
    r = admin('gc', m.backing, '--max-chain', '2')
    assert r.returncode == 0, ''.join(out) + r.stdout + r.stderr
    v = admin('verify', m.backing)
    assert v.returncode == 0, v.stdout + v.stderr
    m.mount()
    st = m.stats()
    assert max(e['depth'] for e in st['files']) <= 2, st
    assert st['unreferenced_objects'] == 0
    for s in survivors:
        assert H.sha256_file(m.p(os.path.basename(s))) == H.sha256_file(s), s


# ---- stats ---------------------------------------------------------------------------------------

def test_stats_json_fields_and_bases(mounts):
    srcs = versions()[:5]
    m = mounts.new('st', opts=['newest_keyframe=0'])  # forward deltas: bases in write order
    write_series(m, srcs)
    st = m.stats()
    for k in ('logical_bytes', 'stored_bytes', 'ratio', 'files', 'objects', 'pending_bytes',
              'unreferenced_objects'):
        assert k in st, k
    assert st['logical_bytes'] == sum(os.path.getsize(s) for s in srcs)
    assert st['pending_bytes'] == 0
    assert st['objects'] == 5 and len(st['files']) == 5
    assert abs(st['ratio'] - st['logical_bytes'] / st['stored_bytes']) < 0.01
    files = {e['path']: e for e in st['files']}
    names = ['/' + os.path.basename(s) for s in srcs]
    assert files[names[0]]['base'] is None and files[names[0]]['depth'] == 0
    for i in range(1, 5):
        e = files[names[i]]
        assert e['base'] == names[i - 1], e
        assert e['depth'] == i
        assert e['size'] == os.path.getsize(srcs[i])
        assert 0 < e['stored'] < e['size']
        assert e['codecs'] and sum(e['codecs'].values()) == e['size'], e
    # a deleted base: null plus the object id
    old_obj = files[names[1]]['object']
    os.unlink(m.p(names[1].lstrip('/')))
    st = m.stats()
    files = {e['path']: e for e in st['files']}
    assert files[names[2]]['base'] is None
    assert files[names[2]]['base_object'] == old_obj
    # the object stays (a base of the next version), unreferenced once the kernel forgets the
    # unlinked inode
    assert st['objects'] == 5 and st['unreferenced_objects'] <= 1
    r = admin('stats', m.backing)    # the table form
    assert r.returncode == 0 and names[2] in r.stdout and 'ratio' in r.stdout, r.stdout


# ---- refusals and help ---------------------------------------------------------------------------

def test_admin_refusals_and_help(mounts, tmp_path):
    m = mounts.new('ref')
    m.unmount()
    notours = tmp_path / 'plain'
    notours.mkdir()
    (notours / 'x').write_text('hello')
    newer = tmp_path / 'newer'
    subprocess.run(['cp', '-a', m.backing, str(newer)], check=True)
    db = sqlite3.connect(str(newer / 'tpdefs.db'))
    db.execute("UPDATE meta SET value=99 WHERE key='version'")
    db.commit()
    db.close()
    dbpages.fix_checksums(str(newer / 'tpdefs.db'))  # a newer format, not a damaged file
    cases = [(str(tmp_path / 'missing'), 'No such file'), (str(notours), 'not a tpdefs'),
             (str(newer), 'newer')]
    for cmd in ('gc', 'stats', 'verify', 'flush'):
        for path, msg in cases:
            r = admin(cmd, path)
            assert r.returncode != 0, (cmd, path, r.stdout)
            assert msg in r.stderr, (cmd, path, r.stderr)
            assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        h = admin(cmd, '--help')
        assert h.returncode == 0 and 'usage' in h.stdout, (cmd, h.stdout, h.stderr)
    h = admin('--help')
    assert h.returncode == 0 and all(c in h.stdout for c in ('gc', 'stats', 'verify', 'flush'))
    # a store nothing has touched verifies clean
    assert admin('verify', m.backing).returncode == 0


# ---- mount(8) and fstab --------------------------------------------------------------------------

HELPER = '/usr/sbin/mount.tpdefs'


@pytest.fixture
def mount_helper():
    """/usr/sbin/mount.tpdefs -> the built daemon, for this test only."""
    H.require_binaries()
    if os.path.lexists(HELPER):
        if os.path.realpath(HELPER) != os.path.realpath(H.MOUNT_BIN):
            pytest.skip(f'{HELPER} exists and is not ours')
        yield HELPER
        return
    os.symlink(os.path.realpath(H.MOUNT_BIN), HELPER)
    try:
        yield HELPER
    finally:
        os.unlink(HELPER)


def wait_unmounted_daemon(mnt, pids):
    deadline = time.time() + H.EXIT_TIMEOUT
    while time.time() < deadline and any(H.pid_alive(p) for p in pids):
        time.sleep(0.05)
    assert not any(H.pid_alive(p) for p in pids), pids


def use_mount(mnt, backing):
    ent = H.mounted_at(mnt)
    assert ent, f'{mnt} not mounted'
    assert ent[0] == 'fuse.tpdefs', ent
    src = SERIES and versions()[0]
    with open(src, 'rb') as f, open(os.path.join(mnt, 'a.safetensors'), 'wb') as g:
        g.write(f.read())
    assert H.sha256_file(os.path.join(mnt, 'a.safetensors')) == H.sha256_file(src)


def test_mount_t_tpdefs(mounts, mount_helper):
    backing, mnt = mounts.localdir('mt-backing'), mounts.localdir('mt-mnt')
    r = subprocess.run(['mount', '-t', 'tpdefs', backing, mnt, '-o', 'debounce_ms=50,noatime'],
                       capture_output=True, text=True, timeout=60)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        pids = H.daemon_pids(mnt)
        use_mount(mnt, backing)
    finally:
        if H.mounted_at(mnt):
            subprocess.run(['umount', mnt], capture_output=True, timeout=60)
    assert not H.mounted_at(mnt)
    wait_unmounted_daemon(mnt, pids)
    assert admin('verify', backing).returncode == 0


def test_fstab_line(mounts, mount_helper):
    backing, mnt = mounts.localdir('fstab-backing'), mounts.localdir('fstab-mnt')
    with open('/etc/fstab', 'rb') as f:
        saved = f.read()
    line = f'{backing} {mnt} tpdefs defaults,noauto,debounce_ms=50,cache_size=64M 0 0\n'
    pids = []
    try:
        with open('/etc/fstab', 'ab') as f:
            if saved and not saved.endswith(b'\n'):
                f.write(b'\n')
            f.write(line.encode())
        r = subprocess.run(['mount', mnt], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        pids = H.daemon_pids(mnt)
        use_mount(mnt, backing)
        r = subprocess.run(['umount', mnt], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    finally:
        if H.mounted_at(mnt):
            subprocess.run(['umount', mnt], capture_output=True, timeout=60)
        with open('/etc/fstab', 'wb') as f:
            f.write(saved)
    with open('/etc/fstab', 'rb') as f:
        assert f.read() == saved
    assert not H.mounted_at(mnt)
    wait_unmounted_daemon(mnt, pids)


# ---- install layout and man pages ----------------------------------------------------------------

def test_install_and_man_pages_match_help(tmp_path):
    r = subprocess.run(['meson', 'install', '-C', H.BUILD, '--destdir', str(tmp_path),
                        '--no-rebuild', '--quiet'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    intro = json.loads(subprocess.run(['meson', 'introspect', '--buildoptions', H.BUILD],
                                      capture_output=True, text=True, check=True).stdout)
    opt = {o['name']: o['value'] for o in intro}
    prefix = opt['prefix'].lstrip('/')
    root = tmp_path / prefix
    sbin = os.path.normpath(os.path.join('/', opt['prefix'], opt['sbindir']))
    assert os.access(os.path.join(tmp_path, sbin.lstrip('/'), 'mount.tpdefs'), os.X_OK)
    assert os.access(root / opt['bindir'] / 'tpdefs-admin', os.X_OK)
    assert os.access(root / opt['bindir'] / 'tpde', os.X_OK)
    if sbin not in ('/sbin', '/usr/sbin'):
        link = tmp_path / 'sbin' / 'mount.tpdefs'
        assert os.path.islink(link) and os.readlink(link) == os.path.join(sbin, 'mount.tpdefs')
    man = root / opt['mandir'] / 'man8'
    assert (man / 'mount.tpdefs.8').exists() and (man / 'tpdefs-admin.8').exists()

    # every option of --help is in the man page (roff escapes '-' as '\-')
    def page(name):
        with open(os.path.join(H.SRC_ROOT, 'mount-scripts', name)) as f:
            return f.read().replace('\\-', '-').replace('\\fB', '').replace('\\fR', '')
    mp = page('mount.tpdefs.8')
    out = subprocess.run([H.MOUNT_BIN, '--help'], capture_output=True, text=True).stdout
    import re
    opts = set(re.findall(r'^\s+([a-z_]+)(?:=[A-Z]+)?\s{2,}', out, re.M))
    opts |= set(re.findall(r'^\s+(-[a-zA-Z])\b', out, re.M))
    assert {'cache_size', 'max_chain', 'staging_limit', 'debounce_ms', 'workers',
            'allow_other', '-f', '-d'} <= opts, opts
    missing = [o for o in opts if o not in mp]
    assert not missing, missing
    ap = page('tpdefs-admin.8')
    for cmd in ('gc', 'stats', 'verify'):
        h = admin(cmd, '--help').stdout
        for o in re.findall(r'^\s+(--[a-z-]+)', h, re.M):
            assert o in ap, (cmd, o)
