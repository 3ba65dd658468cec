#!/bin/bash
# Round 9's seed spread (a second sampler seed, a second seed of the decoder run) and its evaluation with the
# eight corruptions at severity 3, for CAM-Seg and the baseline.
set -e
B=.venv/bin
D=generated:runs/dm/data
R=runs/r9
Q="--data cityscapes:runs/dm/data:val --corruptions none --ensemble 1 --steps 4"
date
[ -f $R/eval_seed1/metrics.json ] || $B/camseg-eval --checkpoint $R/export_gen --data $D --out $R/eval_seed1 --corruptions none --seed 1
date
if [ ! -f $R/gen_seed1/DONE ]; then
  extra=""; [ -f $R/gen_seed1/train_state.json ] && extra="--resume"
  /usr/bin/time -f "%e s" $B/camseg-train vae --init $R/seg --decoder-only $(cat $R/dec_args) --data $D --steps 1500 \
    --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 500 --weather 0.6 --jitter 0.7 \
    --seed 1 --out $R/gen_seed1 $extra
  touch $R/gen_seed1/DONE
fi
[ -f $R/ceiling_gen_seed1/metrics.json ] || { $B/python -c "import sys; from camseg_core.checkpoint import export_pretrained; export_pretrained(sys.argv[1], sys.argv[2], ensemble=8)" $R/gen_seed1 $R/export_gen_seed1; $B/camseg-eval --checkpoint $R/export_gen_seed1 $Q --out $R/ceiling_gen_seed1; }
[ -f $R/eval_gen_seed1/metrics.json ] || $B/camseg-eval --checkpoint $R/export_gen_seed1 --data $D --out $R/eval_gen_seed1 --corruptions none
date
[ -f $R/eval_full_camseg/metrics.json ] || $B/camseg-eval --checkpoint $R/export_gen --data $D --out $R/eval_full_camseg --corruptions all --severities 3
date
[ -f $R/eval_full_baseline/metrics.json ] || $B/camseg-eval --checkpoint $R/baseline_more --data $D --out $R/eval_full_baseline --corruptions all --severities 3
date
