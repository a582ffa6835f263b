"""The sample checkpoint corpus written through the mount: bit-exact before/after flush and
remount; stored size after flush; each checkpoint stored against its predecessor."""
import os
import re
import shutil

import pytest

import tpdefs_harness as H

SCENARIOS = ['gpt_full_state', 'gpt_bf16_st', 'gpt_finetune_frozen', 'hf_trainer_dirs']
MIN_RATIO = {'gpt_bf16_st': 1.3}


def _num(name):
    m = re.search(r'(\d+)', name)
    return int(m.group(1)) if m else -1


def write_order(scen):
    """Relative paths of the scenario in the order the trainer wrote them."""
    root = os.path.join(H.CORPUS, scen)
    if not os.path.isdir(root):
        pytest.fail(f'corpus scenario missing: {root}', pytrace=False)
    out = []
    if scen == 'hf_trainer_dirs':
        for d in sorted(os.listdir(root), key=_num):
            # gen_corpus.py writes model.safetensors, optimizer.pt, trainer_state.json
            order = ['model.safetensors', 'optimizer.pt', 'trainer_state.json']
            names = sorted(os.listdir(os.path.join(root, d)),
                           key=lambda n: order.index(n) if n in order else 99)
            out += [os.path.join(d, n) for n in names]
    else:
        out = sorted(os.listdir(root), key=_num)
    return out


def copy_in(src, dst, chunk=(1 << 17) + 4093):
    """Write like a trainer: sequential writes of an odd size, then close."""
    with open(src, 'rb') as fi, open(dst, 'wb') as fo:
        while True:
            b = fi.read(chunk)
            if not b:
                break
            fo.write(b)


def write_scenario(m, scen):
    root = os.path.join(H.CORPUS, scen)
    files = write_order(scen)
    want = {}
    for rel in files:
        os.makedirs(os.path.dirname(m.p(scen, rel)), exist_ok=True)
        copy_in(os.path.join(root, rel), m.p(scen, rel))
        want[rel] = (H.sha256_file(os.path.join(root, rel)), os.path.getsize(os.path.join(root, rel)))
    return files, want


def check_all(m, scen, want, when):
    bad = []
    for rel, (h, size) in want.items():
        p = m.p(scen, rel)
        st = os.stat(p)
        if st.st_size != size:
            bad.append(f'{rel}: st_size {st.st_size} != {size}')
            continue
        got = H.sha256_file(p)
        if got != h:
            bad.append(f'{rel}: content differs')
    assert not bad, f'{scen} {when}: ' + '; '.join(bad)
    # listing: exactly the files written, nothing else (no temp/staging names leak)
    seen = set()
    for dp, dns, fns in os.walk(m.p(scen)):
        for fn in fns:
            seen.add(os.path.relpath(os.path.join(dp, fn), m.p(scen)))
    assert seen == set(want), f'{scen} {when}: listing {sorted(seen ^ set(want))} differs'


@pytest.mark.parametrize('scen', SCENARIOS)
def test_corpus_roundtrip(mounts, scen):
    m = mounts.new(scen)
    files, want = write_scenario(m, scen)
    check_all(m, scen, want, 'before flush')
    dt = m.flush()
    check_all(m, scen, want, 'after flush')
    logical = sum(s for _, s in want.values())
    stored = H.du_bytes(m.backing)
    ratio = logical / max(stored, 1)
    H.report(f'{scen}: {len(files)} files, logical {logical} B, du -sb BACKING {stored} B, '
          f'ratio {ratio:.3f}, flush {dt:.2f}s')
    # st_blocks reflect stored bytes: never above the logical size by more than block rounding,
    # and (for a store that compresses at all) below it in total.
    blocks = sum(os.stat(m.p(scen, rel)).st_blocks * 512 for rel in files)
    H.report(f'{scen}: sum st_blocks*512 on the mount {blocks} B')
    assert blocks > 0, 'st_blocks is 0 for every stored file'
    # stored bytes, not logical ones: the files' blocks cannot exceed what the store holds
    assert blocks <= stored + 4096 * len(files), \
        f'{scen}: st_blocks total {blocks} exceeds the backing dir ({stored} B)'
    for rel in files:
        st = os.stat(m.p(scen, rel))
        assert st.st_size == want[rel][1]
    m.remount()
    check_all(m, scen, want, 'after remount')
    if scen in MIN_RATIO:
        assert ratio >= MIN_RATIO[scen], \
            f'{scen}: du -sb BACKING {stored} for {logical} logical bytes: ratio {ratio:.3f} < ' \
            f'{MIN_RATIO[scen]}'
        assert blocks < logical, f'{scen}: st_blocks total {blocks} not below logical {logical}'


def family_key(rel):
    """Family = the path with its numbers removed (ckpt_003.pt -> ckpt_#.pt)."""
    return re.sub(r'\d+', '#', rel)


def base_of(entries, rel):
    b = entries.get(rel, {}).get('base')
    return b.lstrip('/') if isinstance(b, str) else b


def test_corpus_predecessor(mounts):
    """After flush every checkpoint is stored against the previous checkpoint of its family."""
    m = mounts.new('pred', opts=['max_chain=32'])
    written = {}
    for scen in SCENARIOS:
        files, _ = write_scenario(m, scen)
        written[scen] = files
    m.flush()
    st = m.stats()
    entries = {e['path'].lstrip('/'): e for e in st['files']}
    problems = []
    for scen, files in written.items():
        fams = {}
        for rel in files:
            fams.setdefault(family_key(rel), []).append(os.path.join(scen, rel))
        for fam, seq in fams.items():
            if fam.endswith('.json'):
                continue  # tiny JSON files: not required to be delta-coded
            for i, path in enumerate(seq):
                e = entries.get(path)
                if e is None:
                    problems.append(f'{path}: missing from stats')
                    continue
                if e['size'] != os.path.getsize(m.p(path)):
                    problems.append(f'{path}: stats size {e["size"]} != {os.path.getsize(m.p(path))}')
                base = base_of(entries, path)
                # a delta pair with the previous version, in either direction (the daemon makes
                # the newest version of a chain its keyframe: newest_keyframe)
                if i == 0:
                    # no name-based predecessor: none, its successor, or a stored file of
                    # another family found by its tensors (a fine-tune's base)
                    if base is not None and (len(seq) < 2 or base != seq[1]) and base in seq:
                        problems.append(f'{path}: base {base!r}, expected none, {seq[1:2]} '
                                        'or a file of another family')
                elif base != seq[i - 1] and base_of(entries, seq[i - 1]) != path:
                    problems.append(f'{path}: base {base!r}, {seq[i - 1]} base '
                                    f'{base_of(entries, seq[i - 1])!r}: not a delta pair')
                if base and entries.get(base) and e.get('depth') is not None \
                        and entries[base].get('depth') is not None \
                        and e['depth'] != entries[base]['depth'] + 1:
                    problems.append(f'{path}: depth {e["depth"]} != base depth + 1')
    assert not problems, '\n'.join(problems)


def test_corpus_small_max_chain(mounts):
    """A short chain limit (forced keyframes) must still read back bit-exact after remount."""
    m = mounts.new('chain', opts=['max_chain=2', 'workers=1'])
    _, want = write_scenario(m, 'gpt_bf16_st')
    m.flush()
    check_all(m, 'gpt_bf16_st', want, 'after flush, max_chain=2')
    m.remount()
    check_all(m, 'gpt_bf16_st', want, 'after remount, max_chain=2')
    shutil.rmtree(m.p('gpt_bf16_st'))
    assert os.listdir(m.mnt) == []


def drop_caches():
    """Cold reads for the checks below when we may (root): the kernel's pages of the mount and
    of the backing files go; without root the reads are warm, still bit-exact."""
    try:
        os.sync()
        with open('/proc/sys/vm/drop_caches', 'w') as f:
            f.write('3\n')
    except OSError:
        pass


def mmap_walk_sha256(path, step=1 << 20):
    """What safetensors and numpy.memmap loaders do: map the file, copy it out front to back."""
    import hashlib
    import mmap
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        size = os.fstat(f.fileno()).st_size
        with mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) as mm:
            for off in range(0, size, step):
                h.update(mm[off:off + step])
    return h.hexdigest()


def test_corpus_cold_mmap_walk_and_stream(mounts):
    """Every stored version of a chain, cold: an mmap walk and a sequential read (streams with
    read-ahead through the chain) are bit-exact, in the restore order of a resumed run (newest
    first) and of a whole run (oldest first); the kernel reads the mount ahead 1 MiB when the
    daemon could set it."""
    scen = 'gpt_full_state'
    m = mounts.new('walk')
    files, want = write_scenario(m, scen)
    m.flush()
    m.remount()
    dev = os.stat(m.mnt).st_dev
    ra = f'/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb'
    if os.geteuid() == 0 and os.path.exists(ra):
        with open(ra) as f:
            assert int(f.read()) == 1024, f'{ra}: the daemon did not raise the read-ahead'
    drop_caches()
    bad = [rel for rel in reversed(files) if mmap_walk_sha256(m.p(scen, rel)) != want[rel][0]]
    assert not bad, f'cold mmap walk differs: {bad}'
    m.remount()
    drop_caches()
    bad = [rel for rel in files if H.sha256_file(m.p(scen, rel)) != want[rel][0]]
    assert not bad, f'cold sequential read differs: {bad}'
