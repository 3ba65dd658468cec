#!/bin/bash
# One round of `make demo-model`'s ROUND as run on the 2-core CPU (rounds 8 on), resumable: a stage whose run
# directory holds DONE is skipped, one with a train_state.json is resumed from its last checkpoint.
#   bash docs/cpu_runs/round.sh RUN PREV_EXPORT PREV_BASELINE [SEED ...]
# trains into RUN (ae, seg, baseline_more, gen; export in RUN/export_gen) from the export PREV_EXPORT and the
# baseline PREV_BASELINE, with the flags of rounds 8 on (autoencoder 2400 steps, masks 8x, classes 4x; generator,
# baseline and decoder with --weather 0.6 --jitter 0.7), evaluates both models and the export at each SEED. The
# decoder run's settings are read from RUN/dec_args (rounds 7 on: "--generated 0.5 --class-weight 1.0").
set -e
R=$1 PREV=$2 PREV_BASE=$3
shift 3
B=.venv/bin
D=generated:runs/dm/data
. docs/cpu_runs/stage.sh  # stage OUT ARGS...: one resumable camseg-train run
Q="--data cityscapes:runs/dm/data:val --corruptions none --ensemble 1 --steps 4"
date
stage $R/ae vae --init $PREV --data $D --steps 2400 --batch-size 8 --lr 3e-4 \
  --warmup 20 --workers 1 --class-weight 4.0 --mask-weight 8 --save-every 200 --sample-every 1000 --low-light 0
[ -f $R/ceiling_ae/metrics.json ] || $B/camseg-eval --checkpoint $R/ae --out $R/ceiling_ae $Q
date
stage $R/seg segmenter --init $R/ae --image-stem 2 --pixel-stem 128 --data $D --image-size 64x128 \
  --steps 2000 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000 --weather 0.6 --jitter 0.7
date
stage $R/baseline_more baseline --init $PREV_BASE --data $D --image-size 64x128 --steps 2000 --batch-size 8 \
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
for seed in "$@"; do
  [ -f $R/eval_seed$seed/metrics.json ] || $B/camseg-eval --checkpoint $R/export_gen --data $D --out $R/eval_seed$seed --corruptions none --seed $seed
done
date
