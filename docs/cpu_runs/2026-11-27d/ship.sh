#!/bin/bash
# Round 5 (runs/f) exported with a vote of 8 as its default sampler, both models evaluated in full.
set -e
B=.venv/bin
D=generated:runs/dm/data
date
[ -f runs/g/r5_export/model.safetensors ] || $B/python -c "import sys; from camseg_core.checkpoint import export_pretrained; export_pretrained(sys.argv[1], sys.argv[2], ensemble=8)" runs/f/gen runs/g/r5_export
cmp runs/g/r5_export/model.safetensors runs/f/export_gen/model.safetensors && echo "weights identical to runs/f/export_gen"
[ -f runs/g/eval_full_camseg/metrics.json ] || /usr/bin/time -f "%e s" $B/camseg-eval --checkpoint runs/g/r5_export --data $D --out runs/g/eval_full_camseg --corruptions all --severities 3
date
[ -f runs/g/eval_full_baseline/metrics.json ] || /usr/bin/time -f "%e s" $B/camseg-eval --checkpoint runs/f/baseline_more --data $D --out runs/g/eval_full_baseline --corruptions all --severities 3
date
$B/camseg-compare camseg=runs/g/eval_full_camseg baseline=runs/g/eval_full_baseline --out runs/g/comparison
date
