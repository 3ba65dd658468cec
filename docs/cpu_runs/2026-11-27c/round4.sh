#!/bin/bash
# A fourth round of the same (experiment): from the round-3 export; the baseline gets 2000 more steps again.
set -e
while pgrep -f runs/d/round3.sh > /dev/null; do sleep 10; done
B=.venv/bin
D=generated:runs/dm/data
. docs/cpu_runs/stage.sh  # stage OUT ARGS...: one resumable camseg-train run
date
stage runs/d/ae vae --init runs/c/export_gen --data $D --steps 1200 --batch-size 8 --lr 3e-4 \
  --warmup 20 --workers 1 --class-weight 2.0 --mask-weight 4 --save-every 200 --sample-every 1000 --low-light 0
date
stage runs/d/seg segmenter --init runs/d/ae --image-stem 2 --pixel-stem 128 --data $D --image-size 64x128 \
  --steps 2000 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000
date
stage runs/d/gen vae --init runs/d/seg --decoder-only --generated 0.5 --data $D --steps 1500 --batch-size 8 \
  --lr 2e-4 --warmup 50 --workers 1 --class-weight 1.0 --save-every 250 --sample-every 500
date
[ -f runs/d/eval_gen/metrics.json ] || { .venv/bin/python -c "import sys; from camseg_core.checkpoint import export_pretrained; export_pretrained(sys.argv[1], sys.argv[2], ensemble=4)" runs/d/gen runs/d/export_gen; $B/camseg-eval --checkpoint runs/d/export_gen --data $D --out runs/d/eval_gen --corruptions none; }
date
stage runs/d/baseline_more baseline --init runs/c/baseline_more --data $D --image-size 64x128 --steps 2000 --batch-size 8 --lr 5e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000
[ -f runs/d/eval_baseline_more/metrics.json ] || $B/camseg-eval --checkpoint runs/d/baseline_more --data $D --out runs/d/eval_baseline_more --corruptions none
date
