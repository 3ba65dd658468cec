#!/bin/bash
# The sampler's temperature, chosen on a tuning set that no model trained or was evaluated on:
#   bash docs/cpu_runs/2026-11-28c/temperature.sh MODEL BASELINE OUT
# 60 more generated scenes (seed 3; the evaluation set is seed 2, the training set seed 1) in every condition,
# the baseline once and MODEL at four temperatures (vote of 8, 20 DDIM steps: the export's sampler).
set -e
M=$1 BASE=$2 O=$3
B=.venv/bin
[ -d runs/tune/gtFine ] || $B/camseg-synth --out runs/tune --num 60 --split val --seed 3 --size 256x512 \
  --conditions clear,fog,snow,rain,night
[ -f $O/baseline/metrics.json ] || $B/camseg-eval --checkpoint $BASE --data generated:runs/tune --out $O/baseline \
  --corruptions none --no-ceilings
for t in 1.0 0.8 0.6 0.4; do
  [ -f $O/t$t/metrics.json ] || $B/camseg-eval --checkpoint $M --data generated:runs/tune --out $O/t$t \
    --corruptions none --no-ceilings --temperature $t
done
