"""Checkpoint layouts of real trainers: HF Trainer dirs with save_total_limit, Lightning's
last.ckpt rename-over, several ranks saving into one directory at once."""
import copy
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

import ptutil as U
import tpdefs_harness as H

HERE = os.path.dirname(os.path.abspath(__file__))


# -- Hugging Face Trainer ------------------------------------------------------------------------
def _hf_run(m, refdir, nckpt=5, every=3, keep=2):
    model, opt, gen = U.new_training(seed=11)
    out = m.p('out')
    os.makedirs(out)
    expect, order = {}, []
    step = 0
    for k in range(nckpt):
        U.train_steps(model, opt, gen, every)
        step += every
        d = f'out/checkpoint-{step}'
        os.makedirs(m.p(d))
        os.makedirs(os.path.join(refdir, d), exist_ok=True)
        expect[f'{d}/model.safetensors'] = U.save_safetensors(model.state_dict(),
                                                              m.p(d, 'model.safetensors'),
                                                              {'format': 'pt'})
        expect[f'{d}/optimizer.pt'] = U.ref_save(copy.deepcopy(opt.state_dict()),
                                                 m.p(d, 'optimizer.pt'),
                                                 os.path.join(refdir, d))
        js = json.dumps({'global_step': step, 'epoch': k, 'log_history': [{'step': step}]})
        with open(m.p(d, 'trainer_state.json'), 'w') as f:
            f.write(js)
        expect[f'{d}/trainer_state.json'] = js.encode()
        order.append(d)
        # save_total_limit: delete the oldest directories
        dirs = sorted((x for x in os.listdir(out) if x.startswith('checkpoint-')),
                      key=lambda x: int(x.split('-')[1]))
        for old in dirs[:-keep]:
            shutil.rmtree(os.path.join(out, old))
            for rel in [r for r in expect if r.startswith(f'out/{old}/')]:
                del expect[rel]
    return expect, order


def _verify(m, expect, when, top='out'):
    for rel, data in expect.items():
        got = U.read(m.p(rel))
        assert got == data, f'{when}: {rel} differs ({len(got)} vs {len(data)} bytes)'
    listed = set()
    for dp, _, fns in os.walk(m.p(top)):
        for fn in fns:
            listed.add(os.path.relpath(os.path.join(dp, fn), m.mnt))
    assert listed == set(expect), f'{when}: listing differs: {sorted(listed ^ set(expect))}'


def test_hf_trainer_layout(mounts):
    m = mounts.new('hf')
    expect, order = _hf_run(m, mounts.localdir('ref'))
    assert sorted(os.listdir(m.p('out'))) == sorted(os.path.basename(d) for d in order[-2:])
    _verify(m, expect, 'before flush')
    m.flush()
    _verify(m, expect, 'after flush')
    m.remount()
    _verify(m, expect, 'after remount')
    sd, _ = U.load_safetensors(m.p(order[-1], 'model.safetensors'))
    assert set(sd) == set(U.Tiny().state_dict())
    torch.load(m.p(order[-1], 'optimizer.pt'))


def test_hf_trainer_predecessor(mounts):
    m = mounts.new('hfp', opts=['max_chain=32'])
    U.require_stats(m)
    _, order = _hf_run(m, mounts.localdir('ref'), nckpt=4, keep=2)
    m.flush()
    kept = order[-2:]
    # the newest dir's files are stored against the previous dir's files of the same name
    st = m.stats()
    entries = {e['path'].lstrip('/'): e for e in st['files']}
    problems = []
    for n in ('model.safetensors', 'optimizer.pt'):
        rel, prev = f'{kept[1]}/{n}', f'{kept[0]}/{n}'
        if not U.linked(entries, rel, prev):
            problems.append(f'{rel} and {prev} are not a delta pair: {entries.get(rel)}')
    assert not problems, '\n'.join(problems)


# -- PyTorch Lightning ---------------------------------------------------------------------------
def _lightning_run(m, refdir, epochs=4, steps=3, flush_each_epoch=False):
    model, opt, gen = U.new_training(seed=12)
    os.makedirs(m.p('ckpts'))
    expect, epoch_files = {}, []
    step = 0
    for e in range(epochs):
        U.train_steps(model, opt, gen, steps)
        step += steps
        state = copy.deepcopy({'epoch': e, 'global_step': step, 'state_dict': model.state_dict(),
                               'optimizer_states': [opt.state_dict()],
                               'pytorch-lightning_version': '2.0.0'})
        name = f'ckpts/epoch={e}-step={step}.ckpt'
        expect[name] = U.ref_save(state, m.p(name), refdir)
        epoch_files.append(name)
        # last.ckpt: written under a temporary name, then atomically renamed over the old one
        tmp = 'ckpts/last.ckpt.tmp_end'
        data = U.ref_save(state, m.p(tmp), refdir)
        os.replace(m.p(tmp), m.p('ckpts/last.ckpt'))
        expect['ckpts/last.ckpt'] = data
        if flush_each_epoch:
            m.flush()   # real epochs take far longer than the encoder's debounce
    return expect, epoch_files


def test_lightning_last_ckpt(mounts):
    m = mounts.new('pl')
    expect, _ = _lightning_run(m, mounts.localdir('ref'))
    _verify(m, expect, 'before flush', top='ckpts')
    m.flush()
    _verify(m, expect, 'after flush', top='ckpts')
    m.remount()
    _verify(m, expect, 'after remount', top='ckpts')
    last = torch.load(m.p('ckpts/last.ckpt'))
    assert last['epoch'] == 3


def test_lightning_predecessor(mounts):
    m = mounts.new('plp', opts=['max_chain=32'])
    U.require_stats(m)
    _, epoch_files = _lightning_run(m, mounts.localdir('ref'), flush_each_epoch=True)
    m.flush()
    entries = U.assert_predecessors(m, [epoch_files])
    # last.ckpt is renamed over each epoch; the epoch file written just before it holds the same
    # tensors (only the archive's root folder differs): found by its tensors, it is last.ckpt's
    # base, and last.ckpt costs under 1% of its size; nothing is kept hidden
    e = entries['ckpts/last.ckpt']
    st = m.stats()
    assert (e.get('base') or '').lstrip('/') == epoch_files[-1], f'last.ckpt: {e}'
    assert e['stored'] < e['size'] / 100, f'last.ckpt: {e}'
    assert st['unreferenced_objects'] == 0, f'replaced versions of last.ckpt kept: {st}'


def test_lightning_predecessor_forward(mounts):
    """newest_keyframe=0: each last.ckpt is a delta against the version it replaced, which stays
    as a hidden base (stats may name it only by base_object)."""
    m = mounts.new('plpf', opts=['max_chain=32', 'newest_keyframe=0'])
    U.require_stats(m)
    _, epoch_files = _lightning_run(m, mounts.localdir('ref'), flush_each_epoch=True)
    m.flush()
    entries = U.assert_predecessors(m, [epoch_files])
    e = entries['ckpts/last.ckpt']
    assert U.has_delta_partner(entries, 'ckpts/last.ckpt'), f'last.ckpt stored alone: {e}'


# -- a fine-tune from a stored model -------------------------------------------------------------
def test_finetune_keeps_its_base_model(mounts):
    """A fine-tune whose model is in the store already: its first checkpoint is found to share
    the model's tensors and coded against it, and each later checkpoint (the series' newest, which
    reverse ingest would otherwise store alone) is coded against the model too, so the run keeps
    costing deltas; every file reads back bit-exact after a remount."""
    m = mounts.new('ft')
    U.require_stats(m)
    ref = mounts.localdir('ftref')
    model, opt, gen = U.new_training(seed=21)
    U.train_steps(model, opt, gen, 20)
    os.makedirs(m.p('base'))
    expect = {'base/pretrained.pt': U.ref_save(model.state_dict(), m.p('base/pretrained.pt'), ref)}
    m.flush()
    # fine-tune: only the head trains, the rest of the model stays as it was loaded
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith('head.')
    ft_opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    os.makedirs(m.p('ft'))
    for k in range(3):
        U.train_steps(model, ft_opt, gen, 5)
        rel = f'ft/ckpt_{k:03d}.pt'
        expect[rel] = U.ref_save(model.state_dict(), m.p(rel), ref)
        m.flush()
    es = {e['path'].lstrip('/'): e for e in m.stats()['files']}
    newest = es['ft/ckpt_002.pt']
    assert U.base_of(es, 'ft/ckpt_002.pt') == 'base/pretrained.pt', newest
    # the frozen body is the model's: the newest costs a fraction of a copy standing alone
    assert newest['stored'] < es['base/pretrained.pt']['stored'] / 3, (newest, es)
    for rel in ('ft/ckpt_000.pt', 'ft/ckpt_001.pt'):
        assert es[rel].get('base') is not None, es[rel]
    m.remount()
    for rel, data in expect.items():
        assert U.read(m.p(rel)) == data, rel


# -- several ranks at once -----------------------------------------------------------------------
RANK_SCRIPT = os.path.join(HERE, 'rank_writer.py')


def _wait_all(paths, procs, what):
    deadline = time.time() + 120
    while not all(os.path.exists(p) for p in paths):
        dead = [p for p in procs if p.poll() is not None and p.returncode != 0]
        if dead or time.time() > deadline:
            outs = [p.communicate(timeout=10)[0].decode(errors='replace') for p in dead]
            raise AssertionError(f'ranks did not reach {what}: {outs}')
        time.sleep(0.02)


def _ranks_run(m, refdir, world=4, rounds=2):
    os.makedirs(m.p('shards'))
    procs = [subprocess.Popen([sys.executable, RANK_SCRIPT, str(r), str(world), str(rounds),
                               m.p('shards'), refdir],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for r in range(world)]
    try:
        for rnd in range(rounds):
            _wait_all([os.path.join(refdir, f'ready{rnd}_{r}') for r in range(world)], procs,
                      f'ready in round {rnd}')
            open(os.path.join(refdir, f'go{rnd}'), 'w').close()   # all ranks write at once
            _wait_all([os.path.join(refdir, f'done{rnd}_{r}') for r in range(world)], procs,
                      f'done in round {rnd}')
        for r, p in enumerate(procs):
            out, _ = p.communicate(timeout=120)
            assert p.returncode == 0, f'rank {r} failed: {out.decode(errors="replace")}'
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    expect, families = {}, []
    for r in range(world):
        fam = []
        for rnd in range(rounds):
            name = f'shards/step{rnd}_rank{r}_of_{world}.pt'
            expect[name] = U.read(os.path.join(refdir, os.path.basename(name)))
            fam.append(name)
        families.append(fam)
    return expect, families


@pytest.fixture(scope='module')
def ranks_store():
    """One 4-rank run shared by the two rank tests (each rank process imports torch: slow)."""
    for fac in H.make_factory_fixture():
        m = fac.new('ranks', opts=['max_chain=32'])
        expect, fams = _ranks_run(m, fac.localdir('ref'))
        yield m, expect, fams


def test_ranks_concurrent_save(ranks_store):
    m, expect, _ = ranks_store
    _verify(m, expect, 'before flush', top='shards')
    m.flush()
    _verify(m, expect, 'after flush', top='shards')
    m.remount()
    _verify(m, expect, 'after remount', top='shards')
    for rel in expect:
        torch.load(m.p(rel))


def test_ranks_predecessor(ranks_store):
    """Round k of rank r is stored against round k-1 of the same rank (the first round may use
    any base: there was no earlier checkpoint of its own)."""
    m, _, fams = ranks_store
    m.flush()
    U.assert_predecessors(m, fams, first_may_have_base=True)
