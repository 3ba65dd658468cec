#!/bin/bash
# The shipped export (round 11 at temperature 0.8: runs/r11/export_t08) under the eight corruptions at severity 3.
B=.venv/bin; D=generated:runs/dm/data; R=runs/r11
while pgrep -f temperature_eval.sh > /dev/null; do sleep 20; done
[ -f $R/eval_full_camseg/metrics.json ] || $B/camseg-eval --checkpoint $R/export_t08 --data $D \
  --out $R/eval_full_camseg --corruptions all --severities 3
date
