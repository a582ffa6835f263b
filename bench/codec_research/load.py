# Loaders: each checkpoint -> ordered dict name -> numpy array (raw dtype: float32 or uint16 for bf16)
import json, struct, numpy as np, torch, os
C = os.environ.get('CORPUS', '/var/tmp/corpus/full')
def st_load(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n)); data = f.read()
    out = {}
    for k, v in h.items():
        if k == '__metadata__': continue
        a, b = v['data_offsets']; dt = {'F32': np.float32, 'BF16': np.uint16}[v['dtype']]
        out[k] = np.frombuffer(data[a:b], dtype=dt).copy()
    return out
def pt_load(path):
    d = torch.load(path, map_location='cpu', weights_only=False)
    out = {}
    if 'model' in d:
        names = list(d['model'].keys())
        for k, v in d['model'].items(): out['w:' + k] = v.numpy().ravel().copy()
        opt = d['optimizer']
    else:
        opt = d; names = _ref_names()
    pids = opt['param_groups'][0]['params']
    for i, pid in enumerate(pids):
        if pid not in opt['state']: continue
        if names and len(names) != len(pids):  # frozen parameters have no state: trainable ones in model order
            names = [n for n in names if not n.startswith(('tok', 'pos', 'blocks.0.', 'blocks.1.'))]
        s = opt['state'][pid]; nm = names[i] if names and len(names) == len(pids) else str(pid)
        out['m:' + nm] = s['exp_avg'].numpy().ravel().copy()
        out['v:' + nm] = s['exp_avg_sq'].numpy().ravel().copy()
        out['step:' + nm] = float(s['step'])
    return out
def series(scen):
    d = f'{C}/{scen}'
    if scen == 'hf_trainer_dirs':
        return [[f'{d}/{c}/model.safetensors', f'{d}/{c}/optimizer.pt'] for c in ('checkpoint-150', 'checkpoint-175', 'checkpoint-200')]
    return [[f'{d}/{f}'] for f in sorted(os.listdir(d))]
def load(files):
    out = {}
    for f in files:
        if f.endswith('.safetensors'):
            for k, v in st_load(f).items(): out['w:' + k] = v
        else: out.update(pt_load(f))
    return out

_RN = None
def _ref_names():
    # hf_trainer_dirs' optimizer.pt has no names: the same GPT's parameter order, from gpt_full_state
    global _RN
    if _RN is None:
        _RN = list(torch.load(f'{C}/gpt_full_state/ckpt_000.pt', map_location='cpu', weights_only=False)['model'].keys())
    return _RN
