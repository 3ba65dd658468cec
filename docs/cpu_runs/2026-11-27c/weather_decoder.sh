#!/bin/bash
# Decoder tune on generated tokens with the weather augmentation at 0.6: $1 = segmenter run, $2 = out prefix
set -e
while pgrep -f runs/e/exp.sh > /dev/null; do sleep 10; done
B=.venv/bin
D=generated:runs/dm/data
out=$2_gen
if [ ! -f $out/DONE ]; then
  extra=""; [ -f $out/train_state.json ] && extra="--resume"
  /usr/bin/time -f "%e s" $B/camseg-train vae --init $1 --decoder-only --generated 0.5 --data $D --steps 1500 --batch-size 8 \
    --lr 2e-4 --warmup 50 --workers 1 --class-weight 1.0 --save-every 250 --sample-every 500 --weather 0.6 --out $out $extra
  touch $out/DONE
fi
[ -f $2_export/model.safetensors ] || .venv/bin/python -c "import sys; from camseg_core.checkpoint import export_pretrained; export_pretrained(sys.argv[1], sys.argv[2], ensemble=4)" $out $2_export
[ -f $2_eval/metrics.json ] || $B/camseg-eval --checkpoint $2_export --data $D --out $2_eval --corruptions none
date
