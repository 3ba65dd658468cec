#!/bin/bash
# A sixth round from the shipped round 5 with a stronger colour jitter (0.5 instead of 0.3) in the generator, decoder and baseline runs (weather 0.6 as round 5).
set -e
true
B=.venv/bin
D=generated:runs/dm/data
. docs/cpu_runs/stage.sh  # stage OUT ARGS...: one resumable camseg-train run
date
# the autoencoder run is the plain round's, already trained by round6_lowlight.sh (runs/h/ae, same command)
date
stage runs/j/seg segmenter --init runs/h/ae --image-stem 2 --pixel-stem 128 --data $D --image-size 64x128 \
  --steps 2000 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000 --weather 0.6 --jitter 0.5
date
stage runs/j/gen vae --init runs/j/seg --decoder-only --generated 0.5 --data $D --steps 1500 --batch-size 8 \
  --lr 2e-4 --warmup 50 --workers 1 --class-weight 1.0 --save-every 250 --sample-every 500 --weather 0.6 --jitter 0.5
date
[ -f runs/j/eval_gen/metrics.json ] || { .venv/bin/python -c "import sys; from camseg_core.checkpoint import export_pretrained; export_pretrained(sys.argv[1], sys.argv[2], ensemble=8)" runs/j/gen runs/j/export_gen; $B/camseg-eval --checkpoint runs/j/export_gen --data $D --out runs/j/eval_gen --corruptions none; }
date
stage runs/j/baseline_more baseline --init runs/f/baseline_more --data $D --image-size 64x128 --steps 2000 --batch-size 8 --lr 5e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000 --weather 0.6 --jitter 0.5
[ -f runs/j/eval_baseline_more/metrics.json ] || $B/camseg-eval --checkpoint runs/j/baseline_more --data $D --out runs/j/eval_baseline_more --corruptions none
date
