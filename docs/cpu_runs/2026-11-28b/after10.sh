#!/bin/bash
# After round10.sh: sampler seeds 3 and 4 of round 10 (five seeds in all), then round 10's evaluation with the
# eight corruptions at severity 3, for CAM-Seg and the baseline (the model card's corruption rows).
# (It ran as two scripts: the seeds, then the corruptions ahead of round11.sh, in runs/r11/chain.sh.)
set -e
B=.venv/bin
D=generated:runs/dm/data
R=runs/r10
date
for seed in 3 4; do
  [ -f $R/eval_seed$seed/metrics.json ] || $B/camseg-eval --checkpoint $R/export_gen --data $D --out $R/eval_seed$seed --corruptions none --seed $seed
done
date
[ -f $R/eval_full_camseg/metrics.json ] || $B/camseg-eval --checkpoint $R/export_gen --data $D --out $R/eval_full_camseg --corruptions all --severities 3
date
[ -f $R/eval_full_baseline/metrics.json ] || $B/camseg-eval --checkpoint $R/baseline_more --data $D --out $R/eval_full_baseline --corruptions all --severities 3
date
