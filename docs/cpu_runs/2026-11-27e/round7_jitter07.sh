#!/bin/bash
# A seventh round from round 6 (jitter 0.5) with a colour jitter of 0.7 in the generator, decoder and baseline runs (weather 0.6).
set -e
true
B=.venv/bin
D=generated:runs/dm/data
. docs/cpu_runs/stage.sh  # stage OUT ARGS...: one resumable camseg-train run
date
stage runs/k/ae vae --init runs/j/export_gen --data $D --steps 1200 --batch-size 8 --lr 3e-4 \
  --warmup 20 --workers 1 --class-weight 2.0 --mask-weight 4 --save-every 200 --sample-every 1000 --low-light 0
date
stage runs/k/seg segmenter --init runs/k/ae --image-stem 2 --pixel-stem 128 --data $D --image-size 64x128 \
  --steps 2000 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000 --weather 0.6 --jitter 0.7
date
stage runs/k/gen vae --init runs/k/seg --decoder-only --generated 0.5 --data $D --steps 1500 --batch-size 8 \
  --lr 2e-4 --warmup 50 --workers 1 --class-weight 1.0 --save-every 250 --sample-every 500 --weather 0.6 --jitter 0.7
date
[ -f runs/k/eval_gen/metrics.json ] || { .venv/bin/python -c "import sys; from camseg_core.checkpoint import export_pretrained; export_pretrained(sys.argv[1], sys.argv[2], ensemble=8)" runs/k/gen runs/k/export_gen; $B/camseg-eval --checkpoint runs/k/export_gen --data $D --out runs/k/eval_gen --corruptions none; }
date
stage runs/k/baseline_more baseline --init runs/j/baseline_more --data $D --image-size 64x128 --steps 2000 --batch-size 8 --lr 5e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000 --weather 0.6 --jitter 0.7
[ -f runs/k/eval_baseline_more/metrics.json ] || $B/camseg-eval --checkpoint runs/k/baseline_more --data $D --out runs/k/eval_baseline_more --corruptions none
date
