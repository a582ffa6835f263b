"""Resume from a checkpoint read back through the mount (after remount) gives exactly the same
loss trajectory as continuing in memory."""
import random

import torch

import ptutil as U


def _full_state(model, opt, gen, step):
    return {'model': model.state_dict(), 'optimizer': opt.state_dict(), 'step': step,
            'torch_rng': torch.get_rng_state(), 'data_rng': gen.get_state(),
            'py_rng': random.getstate()}


def test_resume_identical_losses(mounts):
    m = mounts.new('resume')
    refdir = mounts.localdir('ref')
    model, opt, gen = U.new_training(seed=21)
    model.train()                      # dropout on: the RNG state matters
    first = U.train_steps(model, opt, gen, 15)
    want = U.ref_save(_full_state(model, opt, gen, 15), m.p('resume_015.pt'), refdir)
    # a few more checkpoints so the file read back is a delta against predecessors
    continued = []
    for k in range(3):
        continued += U.train_steps(model, opt, gen, 5)
        U.ref_save(_full_state(model, opt, gen, 20 + 5 * k), m.p(f'resume_{20 + 5 * k:03d}.pt'),
                   refdir)
    m.flush()
    m.remount()
    assert U.read(m.p('resume_015.pt')) == want, 'checkpoint bytes differ after remount'

    state = torch.load(m.p('resume_015.pt'))
    torch.manual_seed(999)             # scramble: everything must come from the checkpoint
    model2 = U.Tiny()
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-3, weight_decay=0.01)
    gen2 = torch.Generator()
    model2.load_state_dict(state['model'])
    opt2.load_state_dict(state['optimizer'])
    torch.set_rng_state(state['torch_rng'])
    gen2.set_state(state['data_rng'])
    random.setstate(state['py_rng'])
    assert state['step'] == 15
    model2.train()
    resumed = U.train_steps(model2, opt2, gen2, 15)
    assert len(first) == 15
    assert resumed == continued, \
        'loss trajectories differ:\n in-memory ' + repr(continued) + '\n resumed   ' + repr(resumed)
    # and the final weights are bit-identical too
    for (n, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), n
    # the last checkpoint read back through the mount equals the final in-memory state
    last = torch.load(m.p('resume_030.pt'))
    U.assert_state_equal(model.state_dict(), last['model'], 'resume_030.pt:model')
