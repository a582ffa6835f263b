#!/usr/bin/env bash
# codec_micro.sh CORPUS_DIR [codec_micro args]
#
# Codec-only ratio and per-core speed (CPU time) over every (predecessor, checkpoint) pair of the
# four corpus scenarios, chunked per tensor like the layout-aligned pipeline: tensor regions come
# from bench/codec_micro_segs.py (safetensors header, torch zip members), the bytes between them
# are coded untyped (ZREF against the same offsets of the predecessor). Builds codec_micro into
# /tmp. Needs /usr/bin/python3 (any python3 with the standard library works for the segments).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 CORPUS_DIR [codec_micro args]" >&2; exit 2; }
D=$1; shift
HERE=$(cd "$(dirname "$0")" && pwd)
B=${B:-/tmp/codec_micro}
C=$HERE/../core/codec
cc -O2 -D_GNU_SOURCE -I"$C" -I"$HERE/../core/common" "$HERE/codec_micro.c" "$C/codec.c" \
	"$C/codec_zstd.c" "$C/codec_planes.c" "$C/codec_sparse.c" "$C/planes.c" "$C/eliasdelta.c" \
	-lzstd -o "$B"
S=$(mktemp -d)
trap 'rm -rf "$S"' EXIT
seg() { local o=$S/$(echo "$1" | tr / _); [ -f "$o" ] || /usr/bin/python3 "$HERE/codec_micro_segs.py" "$1" > "$o"; echo "$o"; }
pairs() { local prev=""; for f in $(ls "$1"/*."$2" | sort); do [ -n "$prev" ] && echo -n "4:$prev:$f:$(seg "$f") "; prev=$f; done; }
echo -n "gpt_full_state      "; nice -n 10 "$B" "$@" $(pairs "$D/gpt_full_state" pt)
echo -n "gpt_bf16_st         "; nice -n 10 "$B" "$@" $(pairs "$D/gpt_bf16_st" safetensors)
echo -n "gpt_finetune_frozen "; nice -n 10 "$B" "$@" $(pairs "$D/gpt_finetune_frozen" pt)
hf=""; prev=""
for d in $(ls -d "$D"/hf_trainer_dirs/checkpoint-* | sort -t- -k2 -n); do
	if [ -n "$prev" ]; then
		hf="$hf 4:$prev/model.safetensors:$d/model.safetensors:$(seg "$d/model.safetensors")"
		hf="$hf 4:$prev/optimizer.pt:$d/optimizer.pt:$(seg "$d/optimizer.pt")"
		hf="$hf 0:$prev/trainer_state.json:$d/trainer_state.json"
	fi
	prev=$d
done
echo -n "hf_trainer_dirs     "; nice -n 10 "$B" "$@" $hf
