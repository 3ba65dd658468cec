#!/bin/bash
# After round11.sh: sampler seed 4 of round 11's export (round 10 was measured over seeds 0-4).
B=.venv/bin; D=generated:runs/dm/data; R=runs/r11
while pgrep -f "round11.sh" > /dev/null; do sleep 20; done
date
[ -f $R/eval_seed4/metrics.json ] || $B/camseg-eval --checkpoint $R/export_gen --data $D --out $R/eval_seed4 --corruptions none --seed 4
date
