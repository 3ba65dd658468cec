#!/bin/bash
# The sampler measured on the same weights (2026-11-27, fourth session, 2-core CPU), in this order.
# runs/e/r4w_export = round 4 as shipped before (= camseg_core/assets/tiny_synth then); runs/f/export_gen = round 5
# (docs/cpu_runs/2026-11-27c/round5_weather.sh), both exported with a vote of 4.
set -e
B=.venv/bin
D=generated:runs/dm/data
R4=runs/e/r4w_export
for s in "8 4" "4 4" "8 20"; do
  set -- $s
  $B/camseg-eval --checkpoint $R4 --data $D --out runs/g/e$1s$2 --corruptions none --no-ceilings --ensemble $1 --steps $2
done
$B/camseg-eval --checkpoint runs/f/export_gen --data $D --out runs/g/r5_e8s20 --corruptions none --no-ceilings \
  --ensemble 8 --steps 20
$B/camseg-sweep --checkpoint runs/f/export_gen --data cityscapes:runs/dm/data:val --out runs/g/sweep --max-images 40 \
  --batch-size 4 --paper vote4_s20 --setting vote4_s20=num_iter:1,steps:20,scheduler:ddim,ensemble:4 \
  --setting vote8_s20=num_iter:1,steps:20,scheduler:ddim,ensemble:8 \
  --setting vote8_s10=num_iter:1,steps:10,scheduler:ddim,ensemble:8 \
  --setting vote6_s20=num_iter:1,steps:20,scheduler:ddim,ensemble:6
$B/camseg-eval --checkpoint runs/f/export_gen --data $D --out runs/g/r5_e8s10 --corruptions none --no-ceilings \
  --ensemble 8 --steps 10
# then ship.sh (the export with a vote of 8 and the full evaluations), then:
$B/python scripts/inference_variants.py --checkpoint runs/g/r5_export --baseline runs/f/baseline_more --data $D \
  --out runs/g/variants
$B/camseg-eval --checkpoint runs/g/r5_export --data $D --out runs/g/r5_e16s20 --corruptions none --no-ceilings \
  --ensemble 16
$B/camseg-compare r4_vote4_s20=runs/e/eval_full_camseg r4_vote4_s4=runs/g/e4s4 r4_vote8_s4=runs/g/e8s4 \
  r4_vote8_s20=runs/g/e8s20 baseline_13000=runs/e/eval_full_baseline --baseline baseline_13000 \
  --out runs/g/compare_sampler_r4
$B/camseg-compare r5_vote4_s20=runs/f/eval_gen r5_vote8_s10=runs/g/r5_e8s10 r5_vote8_s20=runs/g/eval_full_camseg r5_vote16_s20=runs/g/r5_e16s20 \
  baseline_15000=runs/g/eval_full_baseline --baseline baseline_15000 --out runs/g/compare_sampler_r5
