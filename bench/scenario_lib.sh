# shellcheck shell=bash
# bench/scenario_lib.sh - the write sequences of the scenarios that are not a plain corpus
# directory (sourced by bench_mount_ratio.sh and bench_codec.sh, not run).
#
#   lightning_save_last      Lightning, ModelCheckpoint(save_top_k=-1, save_last=True), as Lightning
#                            2.x writes it (bench/gen_lightning.py): per epoch `epoch=E-step=S.ckpt`,
#                            then last.ckpt overwritten in place (fsspec's commit across filesystems
#                            is a copy onto the old file); torch.save into a file object, so every
#                            zip's root folder is `archive/`.
#   lightning_torchsave_path the same tensors saved with torch.save(PATH) (root folder named after the
#                            file: last.ckpt never equals its epoch file); last.ckpt written as
#                            last.ckpt.tmp and renamed over the old one.
#   cp_r                     gpt_full_state's first CPR_VERSIONS versions written to run/, then
#                            `cp -r run run_copy` inside the mount.
#   finetune_from_base       gpt_full_state/ckpt_009.pt written as base/pretrained.pt (and flushed),
#                            then gpt_finetune_frozen's run to finetune/ (it was trained from that
#                            file's weights).
#
# scenario_plan NAME prints one step per line, tab-separated, paths in the mount relative to its
# root; needs CORPUS (the corpus directory), LIGHTNING (gen_lightning.py's OUTDIR) and CPR_VERSIONS:
#   mkdir DIR
#   write SRC DEST        cp SRC MNT/DEST (on an existing DEST: open with O_TRUNC, write in place)
#   mv A B                rename inside the mount
#   cpr A B               cp -r MNT/A MNT/B inside the mount
#   flush                 tpdefs-admin flush: time passes (a real epoch or checkpoint interval
#                         takes minutes, far longer than the encoder's debounce), so every
#                         checkpoint is flushed before the next one is written
#   file DEST SRC PRED KIND   a file present at the end, its source, and the file a name-based tool
#                         takes as its predecessor (- for none); KIND groups rows
#   pair PRED NEW KIND    every (predecessor, version) written, replaced versions included
# shellcheck disable=SC2034  # used by the scripts that source this file
SCENARIOS_NEW=(lightning_save_last lightning_torchsave_path cp_r finetune_from_base)

# scenario_inputs NAME: prints what the scenario needs and is missing (nothing if ready).
scenario_inputs() {
	case $1 in
	lightning_*) [ -f "$LIGHTNING/$1/writes.tsv" ] ||
		echo "$LIGHTNING/$1/writes.tsv (make it: /usr/bin/python3 bench/gen_lightning.py $LIGHTNING)" ;;
	cp_r) [ -f "$CORPUS/gpt_full_state/ckpt_000.pt" ] || echo "$CORPUS/gpt_full_state" ;;
	finetune_from_base)
		[ -f "$CORPUS/gpt_full_state/ckpt_009.pt" ] || echo "$CORPUS/gpt_full_state/ckpt_009.pt"
		[ -f "$CORPUS/gpt_finetune_frozen/ckpt_000.pt" ] || echo "$CORPUS/gpt_finetune_frozen" ;;
	*) echo "unknown scenario $1" ;;
	esac
}

scenario_plan() {
	local sc=$1 t=$'\t' d e v kind prev="" n=0 f files=()
	case $sc in
	lightning_save_last | lightning_torchsave_path)
		d=$LIGHTNING/$sc
		echo "mkdir${t}ckpts"
		local lastsrc="" lastpred=""
		while IFS=$'\t' read -r e v; do
			echo "write${t}$d/$e${t}ckpts/$e"
			if [ $sc = lightning_save_last ]; then
				echo "write${t}$d/$v${t}ckpts/last.ckpt"
			else
				echo "write${t}$d/$v${t}ckpts/last.ckpt.tmp"
				echo "mv${t}ckpts/last.ckpt.tmp${t}ckpts/last.ckpt"
			fi
			echo "flush"
			echo "file${t}ckpts/$e${t}$d/$e${t}${prev:--}${t}epoch files"
			[ -n "$prev" ] && echo "pair${t}$prev${t}$d/$e${t}epoch files"
			echo "pair${t}$d/$e${t}$d/$v${t}last.ckpt"
			prev=$d/$e lastsrc=$d/$v lastpred=$d/$e
		done <"$d/writes.tsv"
		echo "file${t}ckpts/last.ckpt${t}$lastsrc${t}$lastpred${t}last.ckpt"
		;;
	cp_r)
		d=$CORPUS/gpt_full_state
		mapfile -t files < <(cd "$d" && find . -maxdepth 1 -name 'ckpt_*.pt' -printf '%f\n' | sort -V)
		files=("${files[@]:0:$CPR_VERSIONS}")
		echo "mkdir${t}run"
		for f in "${files[@]}"; do echo "write${t}$d/$f${t}run/$f"; echo "flush"; done
		echo "cpr${t}run${t}run_copy"
		echo "flush"
		for f in "${files[@]}"; do
			echo "file${t}run/$f${t}$d/$f${t}${prev:--}${t}run"
			[ -n "$prev" ] && echo "pair${t}$prev${t}$d/$f${t}run"
			prev=$d/$f
		done
		for f in "${files[@]}"; do
			echo "file${t}run_copy/$f${t}$d/$f${t}$d/$f${t}copy"
			echo "pair${t}$d/$f${t}$d/$f${t}copy"
		done
		;;
	finetune_from_base)
		d=$CORPUS/gpt_finetune_frozen
		local base=$CORPUS/gpt_full_state/ckpt_009.pt
		echo "mkdir${t}base"
		echo "write${t}$base${t}base/pretrained.pt"
		echo "flush"
		echo "mkdir${t}finetune"
		echo "file${t}base/pretrained.pt${t}$base${t}-${t}base"
		prev=$base
		for f in $(cd "$d" && find . -maxdepth 1 -name 'ckpt_*.pt' -printf '%f\n' | sort -V); do
			echo "write${t}$d/$f${t}finetune/$f"
			echo "flush"
			if [ $n = 0 ]; then kind="first fine-tune file"; else kind="fine-tune run"; fi
			echo "file${t}finetune/$f${t}$d/$f${t}$prev${t}$kind"
			echo "pair${t}$prev${t}$d/$f${t}$kind"
			prev=$d/$f n=$((n + 1))
		done
		;;
	*) return 1 ;;
	esac
}
