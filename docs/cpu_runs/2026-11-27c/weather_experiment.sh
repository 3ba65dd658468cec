#!/bin/bash
# Experiment: round 4's generator stage and the baseline's 2000 steps with the weather augmentation at 0.6
# instead of 0.3 (same autoencoder runs/d/ae, same init baseline runs/c/baseline_more); control: runs/d/seg.
set -e
while pgrep -f runs/d/round4.sh > /dev/null; do sleep 10; done
B=.venv/bin
D=generated:runs/dm/data
. docs/cpu_runs/stage.sh  # stage OUT ARGS...: one resumable camseg-train run
export_eval() {  # run, export dir, eval dir
  [ -f $3/metrics.json ] && return 0
  [ -f $2/model.safetensors ] || .venv/bin/python -c "import sys; from camseg_core.checkpoint import export_pretrained; export_pretrained(sys.argv[1], sys.argv[2], ensemble=4)" $1 $2
  $B/camseg-eval --checkpoint $2 --data $D --out $3 --corruptions none
}
date
stage runs/e/baseline_more baseline --init runs/c/baseline_more --data $D --image-size 64x128 --steps 2000 --batch-size 8 --lr 5e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000 --weather 0.6
[ -f runs/e/eval_baseline_more/metrics.json ] || $B/camseg-eval --checkpoint runs/e/baseline_more --data $D --out runs/e/eval_baseline_more --corruptions none
date
export_eval runs/d/seg runs/d/export_seg runs/d/eval_seg
date
stage runs/e/seg segmenter --init runs/d/ae --image-stem 2 --pixel-stem 128 --data $D --image-size 64x128 \
  --steps 2000 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000 --weather 0.6
export_eval runs/e/seg runs/e/export_seg runs/e/eval_seg
date
