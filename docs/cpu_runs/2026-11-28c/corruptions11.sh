#!/bin/bash
# The shipped export (round 11 at temperature 0.8: runs/r11/export_t08) under the eight corruptions at severity 3.
B=.venv/bin; D=generated:runs/dm/data; R=runs/r11
while pgrep -f temperature_eval.sh > /dev/null; do sleep 20; done
# The shipped export: round 11's decoder run exported at temperature 0.8 (runs/r11/export_gen has the same weights at
# temperature 1). In the session this line ran by hand before the script; camseg_core/assets/tiny_synth holds its
# two files.
[ -f $R/export_t08/config.json ] || $B/python -c "import sys; from camseg_core.checkpoint import export_pretrained; \
  export_pretrained(sys.argv[1], sys.argv[2], ensemble=8, temperature=0.8)" $R/gen $R/export_t08
[ -f $R/eval_full_camseg/metrics.json ] || $B/camseg-eval --checkpoint $R/export_t08 --data $D \
  --out $R/eval_full_camseg --corruptions all --severities 3
date
