#!/bin/bash
# A fifth round of the same (experiment): from the round-4 export; the baseline gets 2000 more steps again.
set -e
true
B=.venv/bin
D=generated:runs/dm/data
. docs/cpu_runs/stage.sh  # stage OUT ARGS...: one resumable camseg-train run
date
stage runs/f/ae vae --init runs/e/r4w_export --data $D --steps 1200 --batch-size 8 --lr 3e-4 \
  --warmup 20 --workers 1 --class-weight 2.0 --mask-weight 4 --save-every 200 --sample-every 1000 --low-light 0
date
stage runs/f/seg segmenter --init runs/f/ae --image-stem 2 --pixel-stem 128 --data $D --image-size 64x128 \
  --steps 2000 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000 --weather 0.6
date
stage runs/f/gen vae --init runs/f/seg --decoder-only --generated 0.5 --data $D --steps 1500 --batch-size 8 \
  --lr 2e-4 --warmup 50 --workers 1 --class-weight 1.0 --save-every 250 --sample-every 500 --weather 0.6
date
[ -f runs/f/eval_gen/metrics.json ] || { .venv/bin/python -c "import sys; from camseg_core.checkpoint import export_pretrained; export_pretrained(sys.argv[1], sys.argv[2], ensemble=4)" runs/f/gen runs/f/export_gen; $B/camseg-eval --checkpoint runs/f/export_gen --data $D --out runs/f/eval_gen --corruptions none; }
date
stage runs/f/baseline_more baseline --init runs/e/baseline_more --data $D --image-size 64x128 --steps 2000 --batch-size 8 --lr 5e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000 --weather 0.6
[ -f runs/f/eval_baseline_more/metrics.json ] || $B/camseg-eval --checkpoint runs/f/baseline_more --data $D --out runs/f/eval_baseline_more --corruptions none
date
