#!/bin/bash
# A third sampler seed of round 9 (after after.sh).
# (it waited for after.sh to end first)
date
[ -f runs/r9/eval_seed2/metrics.json ] || .venv/bin/camseg-eval --checkpoint runs/r9/export_gen --data generated:runs/dm/data --out runs/r9/eval_seed2 --corruptions none --seed 2
date
