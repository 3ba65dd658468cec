#!/bin/bash
# The shipped round 5 (vote of 8) and its 15000-step baseline, evaluated with the exposure floor (the new default, 0.3)
set -e
B=.venv/bin
D=generated:runs/dm/data
date
[ -f runs/g/floor_baseline/metrics.json ] || $B/camseg-eval --checkpoint runs/f/baseline_more --data $D --out runs/g/floor_baseline --corruptions all --severities 3
date
[ -f runs/g/floor_camseg/metrics.json ] || $B/camseg-eval --data $D --out runs/g/floor_camseg --corruptions all --severities 3
date
