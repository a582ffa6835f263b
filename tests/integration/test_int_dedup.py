"""Whole-file dedup: a file whose bytes equal a stored file's shares its object (cp -r of a run,
an evaluation job's copy of a checkpoint); counts stay right through unlink, remount and gc."""
import os
import shutil

import pytest

import tpdefs_harness as H
from test_admin import versions, admin

pytestmark = pytest.mark.skipif(not H.fuse_available(), reason='needs /dev/fuse and root')


def test_cp_r_of_a_run_costs_nothing(mounts):
    srcs = versions()[:5]
    m = mounts.new('dd')
    os.mkdir(m.p('run1'))
    for s in srcs:
        shutil.copyfile(s, m.p('run1', os.path.basename(s)))
    m.flush()
    before = m.stats()
    shutil.copytree(m.p('run1'), m.p('run2'))
    r = m.admin('flush', m.backing)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count('shared=') == len(srcs), r.stdout
    after = m.stats()
    assert after['objects'] == before['objects'], (before['objects'], after['objects'])
    assert after['stored_bytes'] == before['stored_bytes']
    es = {e['path'].lstrip('/'): e for e in after['files']}
    for s in srcs:
        n = os.path.basename(s)
        assert es['run2/' + n]['object'] == es['run1/' + n]['object']
    m.remount()
    for s in srcs:
        for d in ('run1', 'run2'):
            assert H.sha256_file(m.p(d, os.path.basename(s))) == H.sha256_file(s)
    shutil.rmtree(m.p('run1'))
    st = m.stats()
    assert st['objects'] == before['objects'] and st['unreferenced_objects'] == 0, st
    for s in srcs:
        assert H.sha256_file(m.p('run2', os.path.basename(s))) == H.sha256_file(s)
    assert admin('gc', m.backing).returncode == 0
    assert admin('verify', m.backing).returncode == 0
    for s in srcs:
        assert H.sha256_file(m.p('run2', os.path.basename(s))) == H.sha256_file(s)


def test_rewrite_with_the_same_bytes_and_rename_over(mounts):
    src = versions()[0]
    m = mounts.new('dd2')
    shutil.copyfile(src, m.p('a'))
    m.flush()
    obj = {e['path']: e['object'] for e in m.stats()['files']}['/a']
    shutil.copyfile(src, m.p('a'))          # rewritten in place with the same bytes
    shutil.copyfile(src, m.p('tmp'))
    os.rename(m.p('tmp'), m.p('b'))
    shutil.copyfile(src, m.p('c'))
    os.rename(m.p('c'), m.p('b'))           # rename over a file sharing the object
    m.flush()
    st = m.stats()
    objs = {e['path']: e['object'] for e in st['files']}
    assert objs['/a'] == obj and objs['/b'] == obj, objs
    assert st['objects'] == 1, st
    m.remount()
    for n in ('a', 'b'):
        assert H.sha256_file(m.p(n)) == H.sha256_file(src)
