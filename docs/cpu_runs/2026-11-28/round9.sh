#!/bin/bash
# A ninth round from round 8 (shipped): the same commands and autoencoder flags as round 8, from round 8's
# export and baseline; the decoder run settings are in runs/r9/dec_args.
set -e
B=.venv/bin
D=generated:runs/dm/data
R=runs/r9
stage() {  # out dir, then the camseg-train arguments
  out=$1; shift
  [ -f $out/DONE ] && return 0
  extra=""; [ -f $out/train_state.json ] && extra="--resume"
  /usr/bin/time -f "%e s" $B/camseg-train "$@" --out $out $extra
  touch $out/DONE
}
Q="--data cityscapes:runs/dm/data:val --corruptions none --ensemble 1 --steps 4"
date
stage $R/ae vae --init runs/r8/export_gen --data $D --steps 2400 --batch-size 8 --lr 3e-4 \
  --warmup 20 --workers 1 --class-weight 4.0 --mask-weight 8 --save-every 200 --sample-every 1000 --low-light 0
[ -f $R/ceiling_ae/metrics.json ] || $B/camseg-eval --checkpoint $R/ae --out $R/ceiling_ae $Q
date
stage $R/seg segmenter --init $R/ae --image-stem 2 --pixel-stem 128 --data $D --image-size 64x128 \
  --steps 2000 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000 --weather 0.6 --jitter 0.7
date
stage $R/baseline_more baseline --init runs/r8/baseline_more --data $D --image-size 64x128 --steps 2000 --batch-size 8 \
  --lr 5e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000 --weather 0.6 --jitter 0.7
date
DEC=$(cat $R/dec_args 2>/dev/null || echo "--generated 0.25 --class-weight 2.0")
stage $R/gen vae --init $R/seg --decoder-only $DEC --data $D --steps 1500 --batch-size 8 \
  --lr 2e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 500 --weather 0.6 --jitter 0.7
date
[ -f $R/ceiling_gen/metrics.json ] || { $B/python -c "import sys; from camseg_core.checkpoint import export_pretrained; export_pretrained(sys.argv[1], sys.argv[2], ensemble=8)" $R/gen $R/export_gen; $B/camseg-eval --checkpoint $R/export_gen $Q --out $R/ceiling_gen; }
[ -f $R/eval_gen/metrics.json ] || $B/camseg-eval --checkpoint $R/export_gen --data $D --out $R/eval_gen --corruptions none
[ -f $R/eval_baseline_more/metrics.json ] || $B/camseg-eval --checkpoint $R/baseline_more --data $D --out $R/eval_baseline_more --corruptions none
date
# runs/r9/dec_args held "--generated 0.5 --class-weight 1.0" (round 7's and round 8's decoder run settings).
# Wall times (s), nothing else running: autoencoder 1001.2, segmenter 1225.9, baseline 227.0, decoder 590.6.
# results: autoencoder run ceiling 72.7 (runs/r9/ceiling_ae); after the decoder run 71.9 (71.94, 90.1 % of 79.8),
# quick mIoU 51.1 (runs/r9/ceiling_gen); full evaluation 51.5 / 50.4 / 49.9 / 48.4 / 41.8 / 42.7 / 42.7 mIoU,
# baseline 54.6 / 53.7 / 53.0 / 50.2 / 46.2 / 45.5 / 47.0 (comparison_round9.md)
