"""torch.save / torch.load through the mount: state_dicts and full training states, fp32 and
bf16; safetensors in fp32/bf16/fp16."""
import copy
import os

import pytest
import torch

import ptutil as U


def _training_state(m, opt, step):
    return {'model': m.state_dict(), 'optimizer': opt.state_dict(), 'step': step,
            'rng': torch.get_rng_state()}


def _run_saves(m_fs, refdir, dtype, every=3, nckpt=5, sub='run'):
    """Train a tiny model, save model state_dict and full training state every `every` steps.
    Returns {relpath: (expected bytes, saved object)} in write order and the families."""
    model, opt, gen = U.new_training(seed=5, dtype=dtype)
    os.makedirs(m_fs.p(sub), exist_ok=True)
    saved, fam_w, fam_s = {}, [], []
    step = 0
    for k in range(nckpt):
        U.train_steps(model, opt, gen, every)
        step += every
        sd = {n: t.clone() for n, t in model.state_dict().items()}
        rel_w = f'{sub}/weights_{step:05d}.pt'
        saved[rel_w] = (U.ref_save(sd, m_fs.p(rel_w), refdir), sd)
        state = copy.deepcopy(_training_state(model, opt, step))
        rel_s = f'{sub}/state_{step:05d}.pt'
        saved[rel_s] = (U.ref_save(state, m_fs.p(rel_s), refdir), state)
        fam_w.append(rel_w)
        fam_s.append(rel_s)
    return saved, [fam_w, fam_s]


def _verify(m_fs, saved, when):
    for rel, (want, obj) in saved.items():
        got = U.read(m_fs.p(rel))
        assert got == want, f'{when}: {rel} bytes differ ({len(got)} vs {len(want)})'
        loaded = torch.load(m_fs.p(rel))
        U.assert_state_equal(obj, loaded, f'{when}:{rel}')


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16], ids=['fp32', 'bf16'])
def test_torch_save_load(mounts, dtype):
    m = mounts.new('ts')
    refdir = mounts.localdir('ref')
    saved, _ = _run_saves(m, refdir, dtype)
    _verify(m, saved, 'before flush')
    m.flush()
    _verify(m, saved, 'after flush')
    m.remount()
    _verify(m, saved, 'after remount')


def test_torch_save_predecessor(mounts):
    m = mounts.new('tsp', opts=['max_chain=32'])
    U.require_stats(m)
    saved, fams = _run_saves(m, mounts.localdir('ref'), torch.float32)
    m.flush()
    U.assert_predecessors(m, fams)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16],
                         ids=['fp32', 'bf16', 'fp16'])
def test_safetensors_roundtrip(mounts, dtype):
    m = mounts.new('st')
    model, opt, gen = U.new_training(seed=7)
    want = {}
    for k in range(4):
        U.train_steps(model, opt, gen, 2)
        sd = {n: t.detach().to(dtype).clone() for n, t in model.state_dict().items()}
        sd['extra.int64'] = torch.arange(10, dtype=torch.int64) * k
        rel = f'model_{k:03d}.safetensors'
        data = U.save_safetensors(sd, m.p(rel), {'step': str(k), 'format': 'pt'})
        want[rel] = (data, sd)

    def verify(when):
        for rel, (data, sd) in want.items():
            assert U.read(m.p(rel)) == data, f'{when}: {rel} bytes differ'
            loaded, meta = U.load_safetensors(m.p(rel))
            assert meta['format'] == 'pt'
            U.assert_state_equal(sd, loaded, f'{when}:{rel}')
    verify('before flush')
    m.flush()
    verify('after flush')
    m.remount()
    verify('after remount')


def test_safetensors_predecessor(mounts):
    m = mounts.new('stp', opts=['max_chain=32'])
    U.require_stats(m)
    model, opt, gen = U.new_training(seed=8)
    fam = []
    for k in range(5):
        U.train_steps(model, opt, gen, 2)
        rel = f'model_{k:03d}.safetensors'
        U.save_safetensors({n: t.to(torch.bfloat16) for n, t in model.state_dict().items()},
                           m.p(rel))
        fam.append(rel)
    m.flush()
    U.assert_predecessors(m, [fam])
