#!/bin/bash
# Round 9 with a vote of 16 instead of 8, at sampler seeds 1 and 2 (the two under 90 % in snow).
set -e
for s in 1 2; do
  [ -f runs/r9/eval_ens16_seed$s/metrics.json ] || .venv/bin/camseg-eval --checkpoint runs/r9/export_gen --data generated:runs/dm/data --out runs/r9/eval_ens16_seed$s --corruptions none --ensemble 16 --seed $s
  date
done
