#!/bin/bash
# Where is the ceiling lost: round 7's decoder run from runs/k/seg on the encoder's tokens only (--generated 0),
# classes 2x; then the quick ceiling check.
set -e
B=.venv/bin
[ -f runs/n/gen_real/DONE ] || { $B/camseg-train vae --init runs/k/seg --decoder-only --data generated:runs/dm/data \
  --out runs/n/gen_real --steps 1500 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --class-weight 2.0 \
  --save-every 250 --sample-every 500 --weather 0.6 --jitter 0.7 \
  $([ -f runs/n/gen_real/train_state.json ] && echo --resume); touch runs/n/gen_real/DONE; }
$B/python -c "import sys; from camseg_core.checkpoint import export_pretrained; export_pretrained(sys.argv[1], sys.argv[2], ensemble=8)" runs/n/gen_real runs/n/export_real
$B/camseg-eval --checkpoint runs/n/export_real --out runs/n/ceiling_real --data cityscapes:runs/dm/data:val --corruptions none --ensemble 1 --steps 4
# results (clear, quick check): autoencoder ceiling 71.4 (runs/k/seg before it: 71.0), quick mIoU 49.5
