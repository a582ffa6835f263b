#!/usr/bin/python3
"""Demo trainer: trains a small transformer language model and saves checkpoints the ways real
trainers do (torch.save of the full training state, bf16 safetensors weights), unmodified, into a
directory -- the tpdefs mount in scripts/demo.sh. Needs Debian's python3-torch."""
import json, os, struct, sys, time
import torch, torch.nn as nn, torch.nn.functional as F

torch.set_num_threads(2)
out = sys.argv[1]
steps_per_ckpt = int(os.environ.get('DEMO_STEPS', '20'))
nckpt = int(os.environ.get('DEMO_CKPTS', '6'))
torch.manual_seed(0)

text = open('/usr/share/common-licenses/GPL-3', errors='ignore').read()
chars = sorted(set(text)); stoi = {c: i for i, c in enumerate(chars)}
data = torch.tensor([stoi[c] for c in text])
V, D, T = len(chars), 128, 64

class Model(nn.Module):
    def __init__(s):
        super().__init__()
        s.tok = nn.Embedding(V, D); s.pos = nn.Embedding(T, D)
        s.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, 4, 4 * D, batch_first=True), 2)
        s.head = nn.Linear(D, V)
    def forward(s, x):
        mask = torch.triu(torch.full((x.shape[1], x.shape[1]), float('-inf')), 1)
        return s.head(s.enc(s.tok(x) + s.pos(torch.arange(x.shape[1])), mask=mask))

def save_safetensors(sd, path):
    names = {torch.float32: 'F32', torch.bfloat16: 'BF16', torch.float16: 'F16'}
    header, blobs, off = {'__metadata__': {'format': 'pt'}}, [], 0
    for k in sorted(sd):
        t = sd[k].contiguous()
        b = t.view(torch.uint8).numpy().tobytes()
        header[k] = {'dtype': names[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b); off += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h))); f.write(h)
        for b in blobs: f.write(b)

m = Model(); opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
os.makedirs(f'{out}/run1', exist_ok=True)
step = 0
for k in range(nckpt):
    for _ in range(steps_per_ckpt):
        ix = torch.randint(len(data) - T - 1, (16,))
        x = torch.stack([data[i:i + T] for i in ix]); y = torch.stack([data[i + 1:i + T + 1] for i in ix])
        loss = F.cross_entropy(m(x).flatten(0, 1), y.flatten())
        opt.zero_grad(); loss.backward(); opt.step(); step += 1
    t0 = time.time()
    torch.save({'model': m.state_dict(), 'optimizer': opt.state_dict(), 'step': step},
               f'{out}/run1/ckpt_{k:03d}.pt')
    save_safetensors({n: p.detach().to(torch.bfloat16) for n, p in m.state_dict().items()},
                     f'{out}/run1/model_{k:03d}.safetensors')
    print(f'  step {step:4d}  loss {loss.item():.3f}  saved ckpt_{k:03d}.pt + model_{k:03d}.safetensors '
          f'in {time.time() - t0:.2f}s', flush=True)
