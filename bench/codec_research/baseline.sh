#!/bin/bash
# Baseline: tpde encode (current build-release, 256 KiB chunks) of every (pred, new) pair; ratio = sum new bytes / sum object bytes.
HERE=$(cd "$(dirname "$0")" && pwd); T=${TPDE:-$HERE/../../build-release/tools/tpde}
C=${CORPUS:-/var/tmp/corpus/full}
out=${WORK:-/var/tmp/codec_research}/obj; mkdir -p $out
pairs() {
 for s in gpt_full_state gpt_bf16_st gpt_finetune_frozen; do
   prev=""; for f in $(ls $C/$s); do [ -n "$prev" ] && echo "$s $C/$s/$prev $C/$s/$f"; prev=$f; done
 done
 for fn in model.safetensors optimizer.pt trainer_state.json; do
   prev=""; for d in checkpoint-150 checkpoint-175 checkpoint-200; do [ -n "$prev" ] && echo "hf_trainer_dirs $C/hf_trainer_dirs/$prev/$fn $C/hf_trainer_dirs/$d/$fn"; prev=$d; done
 done
}
pairs | while read s b n; do
  o=$out/$(echo $n | md5sum | cut -c1-8).tpdo
  nice -n 19 $T encode -t 1 --base $b $n -o $o
  echo "$s $(basename $n) $(stat -c %s $n) $(stat -c %s $o)"
  rm -f $o
done > baseline.txt
awk '{L[$1]+=$3; S[$1]+=$4} END {for (s in L) printf "%s %d %d %.4f\n", s, L[s], S[s], L[s]/S[s]}' baseline.txt
