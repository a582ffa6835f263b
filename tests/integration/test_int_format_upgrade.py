"""Old stores stay readable, and `tpdefs-admin upgrade` brings them to format version 2.

tests/fixtures/store_v1 is a store written by tpdefs a8c943c (format version 1: no page checksums):
two versions of a small checkpoint stored as a reverse delta chain, a text file and a symlink.
This build must serve it bit-exact as it is, without converting it by mounting it; the upgrade
rewrites its database with a checksum in every page, after which it still reads bit-exact and a
flipped bit in its metadata is an error instead of metadata."""
import json
import os
import shutil
import sqlite3

import dbpages
import tpdefs_harness as H
from test_rel_00_util import kill_daemon

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'store_v1')


def old_store(mounts, name):
    """A private copy of the fixture, as the daemon left it (empty staging/ and tmp/)."""
    m = mounts.new(name, mount=False)
    shutil.copytree(FIXTURE, m.backing)
    os.remove(os.path.join(m.backing, 'manifest.json'))
    for d in ('staging', 'tmp'):
        os.makedirs(os.path.join(m.backing, d), exist_ok=True)
    os.chmod(m.backing, 0o700)
    return m


def manifest():
    with open(os.path.join(FIXTURE, 'manifest.json')) as f:
        return json.load(f)


def check_files(m):
    man = manifest()
    for rel, digest in man['files'].items():
        assert H.sha256_file(m.p(rel)) == digest, rel
    for rel, target in man['symlinks'].items():
        assert os.readlink(m.p(rel)) == target, rel


def db_format(m):
    db = os.path.join(m.backing, 'tpdefs.db')
    with open(db, 'rb') as f:
        reserve = f.read(100)[20]
    con = sqlite3.connect(f'file:{db}?mode=ro', uri=True)
    try:
        ver = int(con.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0])
    finally:
        con.close()
    return ver, reserve


def test_version_1_store_reads_as_it_is_and_upgrades(mounts):
    m = old_store(mounts, 'v1')
    assert db_format(m) == (1, 0)
    m.mount()
    check_files(m)
    m.unmount()
    assert db_format(m) == (1, 0), 'mounting an old store must not convert it'
    v = m.admin('verify', m.backing)
    assert v.returncode == 0 and 'no page checksums' in v.stdout, (v.stdout, v.stderr)

    r = m.admin('upgrade', m.backing)
    assert r.returncode == 0, r.stderr
    assert 'format version 1 -> 2' in r.stdout, r.stdout
    assert db_format(m) == (2, 8)
    assert dbpages.bad_pages(os.path.join(m.backing, 'tpdefs.db')) == []
    r = m.admin('upgrade', m.backing)
    assert r.returncode == 0 and 'nothing to do' in r.stdout, (r.stdout, r.stderr)

    m.mount()
    check_files(m)
    with open(m.p('after.txt'), 'wb') as f:
        f.write(b'written after the upgrade\n')
    m.flush()
    m.unmount()
    v = m.admin('verify', m.backing)
    assert v.returncode == 0, v.stdout + v.stderr
    assert dbpages.bad_pages(os.path.join(m.backing, 'tpdefs.db')) == []

    # what version 2 buys: a flipped bit inside a record is damage, not another name
    db = os.path.join(m.backing, 'tpdefs.db')
    data = bytearray(open(db, 'rb').read())
    at = data.find(b'notes.txt')
    assert at > 0
    data[at] ^= 0x02  # 'notes.txt' -> 'lotes.txt': a valid record, a different name
    with open(db, 'wb') as f:
        f.write(data)
    rc, out = m.run_mount()
    assert rc != 0 and 'fails its checksum' in out, out
    assert not H.mounted_at(m.mnt)
    v = m.admin('verify', m.backing)
    assert v.returncode != 0 and 'fails its checksum' in v.stdout + v.stderr, v.stdout + v.stderr


def test_upgrade_cut_short_is_finished_by_the_next_run(mounts):
    """A crash after the version is recorded, before the rewrite: version 2, no checksums. The
    store reads as before, and the next upgrade adds them."""
    m = old_store(mounts, 'cut')
    db = os.path.join(m.backing, 'tpdefs.db')
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value=2 WHERE key='version'")
    con.commit()
    con.close()
    assert db_format(m) == (2, 0)
    m.mount()
    check_files(m)
    m.unmount()
    v = m.admin('verify', m.backing)
    assert v.returncode == 1 and 'cut short' in v.stdout, (v.stdout, v.stderr)
    r = m.admin('upgrade', m.backing)
    assert r.returncode == 0 and 'page checksums added' in r.stdout, (r.stdout, r.stderr)
    assert db_format(m) == (2, 8)
    assert dbpages.bad_pages(db) == []
    m.mount()
    check_files(m)
    m.unmount()
    v = m.admin('verify', m.backing)
    assert v.returncode == 0 and 'page checksums' not in v.stdout, (v.stdout, v.stderr)


def test_upgrade_refusals(mounts, tmp_path):
    m = old_store(mounts, 'busy')
    m.mount()
    r = m.admin('upgrade', m.backing)
    assert r.returncode != 0 and 'unmount' in r.stderr, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    check_files(m)
    m.unmount()
    assert db_format(m) == (1, 0), 'a refused upgrade changed the store'

    notours = tmp_path / 'plain'
    notours.mkdir()
    (notours / 'x').write_text('hello')
    for path, msg in ((str(tmp_path / 'missing'), 'No such file'), (str(notours), 'not a tpdefs')):
        r = m.admin('upgrade', path)
        assert r.returncode != 0 and msg in r.stderr, (path, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(os.listdir(notours)) == ['x'], 'upgrade touched a directory that is not a store'
    r = m.admin('upgrade')
    assert r.returncode == 2 and 'usage' in r.stderr
    h = m.admin('upgrade', '--help')
    assert h.returncode == 0 and 'usage' in h.stdout


def test_outside_writer_after_a_crash_is_refused_then_resummed(mounts):
    """After a crash the WAL holds committed pages. A tool outside tpdefs that opens tpdefs.db for
    writing (here Python's sqlite3: its last close folds the WAL into the file) writes them
    without their sums. The store is then refused as damaged, with the way out in the message;
    `upgrade --resum` rewrites the sums over a database SQLite itself finds sound."""
    m = mounts.new('outside')
    want = {f'f{i:02d}': os.urandom(1000 + i) for i in range(40)}
    for name, data in want.items():
        with open(m.p(name), 'wb') as f:
            f.write(data)
    kill_daemon(m)
    db = os.path.join(m.backing, 'tpdefs.db')
    assert os.path.getsize(db + '-wal') > 0, 'the crash left no WAL to fold'
    con = sqlite3.connect(db)
    assert con.execute('SELECT count(*) FROM dentries').fetchone()[0] == len(want)
    con.close()
    assert dbpages.bad_pages(db), 'the outside close wrote no page: nothing to repair'
    rc, out = m.run_mount()
    assert rc != 0 and '--resum' in out, out
    assert not H.mounted_at(m.mnt)
    r = m.admin('upgrade', '--resum', m.backing)
    assert r.returncode == 0 and 'checks clean' in r.stdout, (r.stdout, r.stderr)
    assert dbpages.bad_pages(db) == []
    m.mount()
    for name, data in want.items():
        with open(m.p(name), 'rb') as f:
            assert f.read() == data, name
    m.unmount()
    v = m.admin('verify', m.backing)
    assert v.returncode == 0, v.stdout + v.stderr


def test_damaged_format_record_is_damage_not_a_foreign_directory(mounts):
    """A flipped bit in the page that holds the format record: the store is damaged (EIO, verify
    exit 1), not "not a tpdefs backing directory", which would invite re-creating it."""
    m = old_store(mounts, 'meta')
    r = m.admin('upgrade', m.backing)
    assert r.returncode == 0, r.stderr
    db = os.path.join(m.backing, 'tpdefs.db')
    con = sqlite3.connect(f'file:{db}?mode=ro', uri=True)
    root = con.execute("SELECT rootpage FROM sqlite_schema WHERE name='meta'").fetchone()[0]
    con.close()
    data = bytearray(open(db, 'rb').read())
    at = data.find(b'tpdefs-backing', (root - 1) * 4096, root * 4096)
    assert at > 0, 'format record not on the meta table page'
    data[at] ^= 0x01
    with open(db, 'wb') as f:
        f.write(data)
    rc, out = m.run_mount()
    assert rc != 0 and 'damaged' in out and 'not a tpdefs' not in out, out
    v = m.admin('verify', m.backing)
    assert v.returncode == 1 and 'damaged' in v.stderr, (v.returncode, v.stderr)
