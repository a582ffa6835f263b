"""tpde's opt-in lossy mode (the seed method's thresholding): named lossy everywhere, never in the
filesystem; the object records its threshold; decoding gives a checkpoint torch.load reads, within
the threshold of the input; the default stays bit-exact."""
import os
import subprocess

import pytest

import tpdefs_harness as H

TPDE = os.path.join(H.BUILD, 'tools', 'tpde')
SAMPLE = os.path.join(H.CORPUS, 'gpt_full_state')


def tpde(*args):
    return subprocess.run([TPDE, *args], capture_output=True, text=True, timeout=120)


def test_lossy_threshold(tmp_path):
    torch = pytest.importorskip('torch')
    old, new = (os.path.join(SAMPLE, f) for f in sorted(os.listdir(SAMPLE))[:2])
    lossy, exact = str(tmp_path / 'l.tpdo'), str(tmp_path / 'x.tpdo')
    r = tpde('encode', '--base', old, new, '-o', lossy, '--lossy-threshold', '1e-3')
    assert r.returncode == 0 and 'LOSSY' in r.stderr, r.stderr
    assert tpde('encode', '--base', old, new, '-o', exact).returncode == 0
    assert os.path.getsize(lossy) < os.path.getsize(exact)
    assert 'LOSSY:          yes, threshold 0.001' in tpde('inspect', lossy).stdout
    assert 'lossy:          no (bit-exact)' in tpde('inspect', exact).stdout
    out = str(tmp_path / 'l.pt')
    assert tpde('decode', '--base', old, lossy, '-o', out).returncode == 0
    got, want = torch.load(out), torch.load(new)
    gm, wm = got['model'], want['model']
    assert gm.keys() == wm.keys()
    worst = max((gm[k] - wm[k]).abs().max().item() for k in gm if gm[k].dtype == torch.float32)
    assert 0 < worst < 1e-3
    # the default path: bit-exact
    out2 = str(tmp_path / 'x.pt')
    assert tpde('decode', '--base', old, exact, '-o', out2).returncode == 0
    assert H.sha256_file(out2) == H.sha256_file(new)


def test_lossy_needs_a_base_and_a_positive_threshold(tmp_path):
    new = os.path.join(SAMPLE, sorted(os.listdir(SAMPLE))[0])
    r = tpde('encode', new, '-o', str(tmp_path / 'o'), '--lossy-threshold', '1e-3')
    assert r.returncode != 0 and 'needs --base' in r.stderr, r.stderr
    for bad in ('0', '-1', 'x', 'nan'):
        r = tpde('encode', '--base', new, new, '-o', str(tmp_path / 'o'), '--lossy-threshold', bad)
        assert r.returncode == 2 and 'lossy-threshold' in r.stderr, (bad, r.stderr)
    assert not os.path.exists(tmp_path / 'o')
