#!/bin/bash
# Ran at commit 113654b, which had --class-head-width (dropped again in d04a21d). Round 7's decoder run again from the same segmenter (runs/k/seg), as shipped (a half generated, classes 1x),
# but with a class refinement of width 64 (--class-head-width 64); then the quick ceiling check.
set -e
B=.venv/bin
[ -f runs/n/gen_h64/DONE ] || { $B/camseg-train vae --init runs/k/seg --decoder-only --generated 0.5 --data generated:runs/dm/data \
  --out runs/n/gen_h64 --steps 1500 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --class-weight 1.0 \
  --save-every 250 --sample-every 500 --weather 0.6 --jitter 0.7 --class-head-width 64 \
  $([ -f runs/n/gen_h64/train_state.json ] && echo --resume); touch runs/n/gen_h64/DONE; }
$B/python -c "import sys; from camseg_core.checkpoint import export_pretrained; export_pretrained(sys.argv[1], sys.argv[2], ensemble=8)" runs/n/gen_h64 runs/n/export_h64
$B/camseg-eval --checkpoint runs/n/export_h64 --out runs/n/ceiling_h64 --data cityscapes:runs/dm/data:val --corruptions none --ensemble 1 --steps 4
# results (clear, quick check): autoencoder ceiling 69.5, quick mIoU 49.5: the same as round 7's decoder run without the refinement
