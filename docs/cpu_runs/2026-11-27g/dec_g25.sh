#!/bin/bash
# Round 8's decoder run with a quarter of each batch generated and the class losses 2x (round8.sh's: a half, 1x).
set -e
B=.venv/bin
R=runs/r8
Q="--data cityscapes:runs/dm/data:val --corruptions none --ensemble 1 --steps 4"
[ -f $R/gen_g25/DONE ] || { $B/camseg-train vae --init $R/seg --decoder-only --generated 0.25 --class-weight 2.0 \
  --data generated:runs/dm/data --out $R/gen_g25 --steps 1500 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 \
  --save-every 250 --sample-every 500 --weather 0.6 --jitter 0.7 $([ -f $R/gen_g25/train_state.json ] && echo --resume); touch $R/gen_g25/DONE; }
[ -f $R/ceiling_g25/metrics.json ] || { $B/python -c "import sys; from camseg_core.checkpoint import export_pretrained; export_pretrained(sys.argv[1], sys.argv[2], ensemble=8)" $R/gen_g25 $R/export_g25; $B/camseg-eval --checkpoint $R/export_g25 $Q --out $R/ceiling_g25; }
[ -f $R/eval_g25/metrics.json ] || $B/camseg-eval --checkpoint $R/export_g25 --data generated:runs/dm/data --out $R/eval_g25 --corruptions none
# results (clear, quick check): autoencoder ceiling 72.0, quick mIoU 49.3; full evaluation: 50.3 / 49.2 / 48.5 / 46.9 / 40.0 / 41.1 / 41.5 mIoU
