# Turn table_raw.txt (bytes saved per idea) + baseline.txt (tpde encode totals) into the ratio table.
import collections
base = collections.defaultdict(lambda: [0, 0])
for l in open('baseline.txt'):
    s, f, L, S = l.split(); base[s][0] += int(L); base[s][1] += int(S)
sav = collections.defaultdict(dict)
for l in open('table_raw.txt'):
    s, name, v = l.rstrip('\n').split('\t'); sav[s][name] = int(v)
# m: analytic bound from fp32_m.py (value coder with contexts, adaptive per chunk): 26.964 -> 26.497 bits/elem
# = 1.73% of m's cost; m's share of cost per scenario from classes.txt
mshare = {'gpt_full_state': 98165860, 'gpt_finetune_frozen': 37983190, 'hf_trainer_dirs': 21812157}
scen = ['gpt_full_state', 'gpt_bf16_st', 'gpt_finetune_frozen', 'hf_trainer_dirs']
names = sorted({n for s in sav for n in sav[s]})
print('| idea | ' + ' | '.join(scen) + ' |'); print('|---|' + '--:|' * len(scen))
print('| today (tpde encode, current build) | ' + ' | '.join(f'{base[s][0]/base[s][1]:.4f}' for s in scen) + ' |')
def row(label, f):
    cells = []
    for s in scen:
        v = f(s)
        if v is None: cells.append('n/a'); continue
        L, S = base[s]; r = L / (S - v); cells.append(f'{r:.4f} ({100*(r/(L/S)-1):+.2f}%)')
    print(f'| {label} | ' + ' | '.join(cells) + ' |')
for n in names: row(n, lambda s: sav[s].get(n))
best = lambda s: max([sav[s].get(n, 0) for n in names if n.startswith('w')] + [0]) + max([sav[s].get(n, 0) for n in names if n.startswith('v')] + [0])
row('best w + best v predictor (measured)', best)
row('m: value coder with v/dw contexts (bound, 1.73% of m)', lambda s: int(0.0173 * mshare[s]) if s in mshare else None)
row('all of the above', lambda s: best(s) + int(0.0173 * mshare.get(s, 0)))
