#!/bin/bash
# A sixth round from the shipped round 5 with the low-light augmentation at 0.3 (default 0.15) for both models.
set -e
true
B=.venv/bin
D=generated:runs/dm/data
. docs/cpu_runs/stage.sh  # stage OUT ARGS...: one resumable camseg-train run
date
stage runs/h/ae vae --init runs/g/r5_export --data $D --steps 1200 --batch-size 8 --lr 3e-4 \
  --warmup 20 --workers 1 --class-weight 2.0 --mask-weight 4 --save-every 200 --sample-every 1000 --low-light 0
date
stage runs/h/seg segmenter --init runs/h/ae --image-stem 2 --pixel-stem 128 --data $D --image-size 64x128 \
  --steps 2000 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000 --weather 0.6 --low-light 0.3
date
stage runs/h/gen vae --init runs/h/seg --decoder-only --generated 0.5 --data $D --steps 1500 --batch-size 8 \
  --lr 2e-4 --warmup 50 --workers 1 --class-weight 1.0 --save-every 250 --sample-every 500 --weather 0.6 --low-light 0.3
date
[ -f runs/h/eval_gen/metrics.json ] || { .venv/bin/python -c "import sys; from camseg_core.checkpoint import export_pretrained; export_pretrained(sys.argv[1], sys.argv[2], ensemble=8)" runs/h/gen runs/h/export_gen; $B/camseg-eval --checkpoint runs/h/export_gen --data $D --out runs/h/eval_gen --corruptions none; }
date
stage runs/h/baseline_more baseline --init runs/f/baseline_more --data $D --image-size 64x128 --steps 2000 --batch-size 8 --lr 5e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000 --weather 0.6 --low-light 0.3
[ -f runs/h/eval_baseline_more/metrics.json ] || $B/camseg-eval --checkpoint runs/h/baseline_more --data $D --out runs/h/eval_baseline_more --corruptions none
date
