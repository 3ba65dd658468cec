#!/bin/bash
# Round 11's export at the temperature the tuning set chose (0.8, temperature.sh) on the evaluation set at sampler
# seeds 0-4, then the evaluation of the baseline under the eight corruptions at severity 3.
B=.venv/bin; D=generated:runs/dm/data; R=runs/r11
for seed in 0 1 2 3 4; do
  [ -f $R/eval_t0.8_seed$seed/metrics.json ] || $B/camseg-eval --checkpoint $R/export_gen --data $D \
    --out $R/eval_t0.8_seed$seed --corruptions none --temperature 0.8 --seed $seed --no-ceilings
done
date
[ -f $R/eval_full_baseline/metrics.json ] || $B/camseg-eval --checkpoint $R/baseline_more --data $D \
  --out $R/eval_full_baseline --corruptions all --severities 3
date
