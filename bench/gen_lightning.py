#!/usr/bin/python3
"""gen_lightning.py OUTDIR [--epochs N] [--steps N] [--corpus-gen DIR]

A PyTorch Lightning run with save_last=True, emulated byte for byte (there is no Lightning package
here): the corpus' GPT (../shared/corpus/gen_corpus.py, 3.2M parameters, AdamW) trained for real,
N epochs of S steps, and at each epoch end what ModelCheckpoint(save_top_k=-1, save_last=True)
saves, in its order: `epoch=E-step=S.ckpt`, then `last.ckpt`.

What Lightning 2.x writes (src/lightning/fabric/utilities/cloud_io.py `_atomic_save`, callbacks/
model_checkpoint.py), reproduced here:
- the dict of `trainer.save_checkpoint`: epoch, global_step, pytorch-lightning_version, state_dict
  (the LightningModule's, keys prefixed `model.`), loops, callbacks (the ModelCheckpoint's state:
  best_model_path is the epoch file, last_model_path is set to last.ckpt *before* last.ckpt is
  saved, and was '' for the first epoch file), optimizer_states, lr_schedulers;
- `torch.save(checkpoint, f)` into an open file object (an fsspec LocalFileOpener on the temporary
  file of `fs.transaction`), never into a path: the zip's root folder is `archive/` in every file
  (torch.save(PATH) names it after the file instead). So from the second epoch on, the epoch file
  and last.ckpt are the same bytes; the first pair differs only in the pickled last_model_path.
- placement: the temporary file comes from tempfile.mkstemp() (in $TMPDIR, never on the mount)
  and the transaction's commit is shutil.move(temp, path): across filesystems that is copy2, i.e.
  open(path, O_TRUNC) and write -- last.ckpt is overwritten in place, not renamed over.
  The benches replay this with `cp` (scenario lightning_save_last).

A second layout from the same training (same tensors), for the case of a trainer or script that
calls torch.save(state, PATH): the root folder is named after the file, so last.ckpt never equals
its epoch file byte for byte, and last.ckpt is written as `last.ckpt.tmp` and renamed over the old
one (scenario lightning_torchsave_path).

Output (the benches read only this):
  OUTDIR/lightning_save_last/epoch=E-step=S.ckpt, last@E.ckpt  (last.ckpt as saved at epoch E)
  OUTDIR/lightning_torchsave_path/epoch=E-step=S.ckpt, last@E.ckpt
  OUTDIR/lightning_*/writes.tsv: one epoch per line: EPOCHFILE<TAB>LASTVERSION
Needs Debian's python3-torch (run with /usr/bin/python3).
"""
import argparse, io, math, os, sys, time

ap = argparse.ArgumentParser()
ap.add_argument('out')
ap.add_argument('--epochs', type=int, default=6)
ap.add_argument('--steps', type=int, default=25, help='optimizer steps per epoch')
ap.add_argument('--corpus-gen', default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      '..', '..', 'shared', 'corpus'))
a = ap.parse_args()
sys.path.insert(0, a.corpus_gen)
import torch, torch.nn.functional as F  # noqa: E402
import gen_corpus as G  # noqa: E402  (the corpus' GPT, data and torch.set_num_threads(2))

DIRPATH = '/mnt/ckpt/lightning_logs/version_0/checkpoints'   # ModelCheckpoint.dirpath (absolute)
CB_KEY = ("ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, "
          "'every_n_epochs': 1, 'train_time_interval': None}")


def progress(ready, started, processed, completed):
    return {'ready': ready, 'started': started, 'processed': processed, 'completed': completed}


def loops_state(epoch, step, batches):
    """fit_loop's state at on_train_epoch_end of `epoch` (the epoch is not counted completed yet)."""
    tot = progress(step, step, step, step)
    cur = progress(batches, batches, batches, batches)
    return {'fit_loop': {
        'state_dict': {},
        'epoch_loop.state_dict': {'_batches_that_stepped': step},
        'epoch_loop.batch_progress': {'total': tot, 'current': cur, 'is_last_batch': True},
        'epoch_loop.scheduler_progress': {'total': {'ready': 0, 'completed': 0},
                                          'current': {'ready': 0, 'completed': 0}},
        'epoch_loop.automatic_optimization.state_dict': {},
        'epoch_loop.automatic_optimization.optim_progress': {'optimizer': {'step': {
            'total': {'ready': step, 'completed': step},
            'current': {'ready': batches, 'completed': batches}}, 'zero_grad': {
            'total': {'ready': step, 'completed': step, 'started': step},
            'current': {'ready': batches, 'completed': batches, 'started': batches}}}},
        'epoch_loop.manual_optimization.state_dict': {},
        'epoch_loop.manual_optimization.optim_step_progress': {
            'total': {'ready': 0, 'completed': 0}, 'current': {'ready': 0, 'completed': 0}},
        'epoch_loop.val_loop.state_dict': {},
        'epoch_progress': {'total': progress(epoch + 1, epoch + 1, epoch + 1, epoch),
                           'current': progress(epoch + 1, epoch + 1, epoch + 1, epoch)},
    }, 'validate_loop': {'state_dict': {}}, 'test_loop': {'state_dict': {}},
       'predict_loop': {'state_dict': {}}}


def checkpoint(m, opt, epoch, step, batches, best, last):
    cb = {'monitor': None, 'best_model_score': None, 'best_model_path': best, 'current_score': None,
          'dirpath': DIRPATH, 'best_k_models': {}, 'kth_best_model_path': '',
          'kth_value': torch.tensor(math.inf), 'last_model_path': last}
    return {'epoch': epoch, 'global_step': step, 'pytorch-lightning_version': '2.4.0',
            'state_dict': {'model.' + k: v for k, v in m.state_dict().items()},
            'loops': loops_state(epoch, step, batches),
            'callbacks': {CB_KEY: cb},
            'optimizer_states': [opt.state_dict()], 'lr_schedulers': []}


def save_fileobj(obj, path):
    """torch.save into an open file object, as _atomic_save does (root folder `archive/`)."""
    with open(path, 'wb') as f:
        torch.save(obj, f)


def main():
    torch.manual_seed(7)
    vocab, batch = G.lm_data()
    m = G.GPT(vocab)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.1)
    outs = {s: os.path.join(a.out, s) for s in ('lightning_save_last', 'lightning_torchsave_path')}
    for d in outs.values():
        os.makedirs(d, exist_ok=True)
    writes = {s: [] for s in outs}
    step, last_model_path = 0, ''
    t0 = time.time()
    for e in range(a.epochs):
        for _ in range(a.steps):
            x, y = batch()
            loss = F.cross_entropy(m(x).flatten(0, 1), y.flatten())
            opt.zero_grad(); loss.backward(); opt.step(); step += 1
        name = f'epoch={e}-step={step}.ckpt'
        best = f'{DIRPATH}/{name}'
        lastv = f'last@{e}.ckpt'
        # _save_none_monitor_checkpoint: best_model_path = the epoch file, then save
        ck_epoch = checkpoint(m, opt, e, step, a.steps, best, last_model_path)
        # _save_last_checkpoint: last_model_path = last.ckpt, then save
        last_model_path = f'{DIRPATH}/last.ckpt'
        ck_last = checkpoint(m, opt, e, step, a.steps, best, last_model_path)
        d = outs['lightning_save_last']
        save_fileobj(ck_epoch, f'{d}/{name}')
        save_fileobj(ck_last, f'{d}/{lastv}')
        # torch.save(PATH): the root folder is the file's name without its last extension
        # (`epoch=E-step=S/`, `last.ckpt/` for last.ckpt.tmp); saved under those names, then renamed
        d = outs['lightning_torchsave_path']
        torch.save(ck_epoch, f'{d}/{name}')
        torch.save(ck_last, f'{d}/last.ckpt.tmp')
        os.replace(f'{d}/last.ckpt.tmp', f'{d}/{lastv}')
        for s in outs:
            writes[s].append(f'{name}\t{lastv}\n')
        print(f'{a.out}: epoch {e} step {step} loss {loss.item():.3f} ({time.time() - t0:.0f}s)',
              flush=True)
    for s, d in outs.items():
        with open(f'{d}/writes.tsv', 'w') as f:
            f.writelines(writes[s])


main()
