"""One 'rank' of a data-parallel job: each round it trains a little, then saves its shard when
the round's go-file appears (all ranks write into the same directory at the same moment).
Used by test_py_trainer_layouts.py. Args: rank world rounds outdir refdir."""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptutil as U  # noqa: E402


def wait_for(path, timeout=120):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            sys.exit(f'timed out waiting for {path}')
        time.sleep(0.005)


def main():
    rank, world, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    outdir, refdir = sys.argv[4], sys.argv[5]
    model, opt, gen = U.new_training(seed=100 + rank)
    for rnd in range(rounds):
        U.train_steps(model, opt, gen, 2)
        state = {'rank': rank, 'round': rnd, 'model': model.state_dict(),
                 'optimizer': opt.state_dict()}
        name = f'step{rnd}_rank{rank}_of_{world}.pt'
        torch.save(state, os.path.join(refdir, name))     # reference bytes (same basename)
        open(os.path.join(refdir, f'ready{rnd}_{rank}'), 'w').close()
        wait_for(os.path.join(refdir, f'go{rnd}'))
        torch.save(state, os.path.join(outdir, name))
        open(os.path.join(refdir, f'done{rnd}_{rank}'), 'w').close()


if __name__ == '__main__':
    main()
