#!/bin/sh
# Second device call of 2026-11-27 (H200): does more decoder-only tuning of the GPU recipe's export raise its
# autoencoder ceiling past 90 % of the resolution ceiling (78.8 of 87.6) without costing CAM-Seg mIoU?
# The export (runs/gpu2/export, the first call's model.part.* joined) and the diffusers / albumentations
# wheels (.whl2) are carried; the data is generated again with the recipe's seeds.
#   OUT=$OUT sh docs/gpu_runs/2026-11-27b_h200/decoder_probe.sh
set -u
begin=$(date +%s)
PYTHON=${PYTHON:-python3}
R=${R:-/tmp/probe}
WORKERS=${WORKERS:-16}
LOADERS=${LOADERS:-12}
DEVICE=${DEVICE:-auto}
PRECISION=${PRECISION:-bf16}
TRAIN=${TRAIN:-2000}
VAL=${VAL:-60}
STEPS=${STEPS:-400}
BATCH=${BATCH:-32}
export PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)"
if ! "$PYTHON" -c 'import diffusers, albumentations' 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl2/*.whl && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
mkdir -p "$OUT"
log="$OUT/probe.txt"
stamp() { echo "== $1 at $(($(date +%s) - begin)) s" | tee -a "$log"; }
stamp setup
"$PYTHON" -m camseg_core.cli.synth --out "$R/data" --workers "$WORKERS" --num "$TRAIN" --split train --seed 1 \
    --size 128x256 --conditions clear >>"$log" 2>&1
"$PYTHON" -m camseg_core.cli.synth --out "$R/data" --workers "$WORKERS" --num "$VAL" --split val --seed 2 \
    --size 256x512 --conditions clear,fog,snow,rain,night >>"$log" 2>&1
stamp data
for G in 0.25 0; do
    "$PYTHON" -m camseg_core.cli.train vae --data "generated:$R/data" --image-size 128x256 --device "$DEVICE" \
        --precision "$PRECISION" --workers "$LOADERS" --sample-every 0 --out "$R/dec_$G" --steps "$STEPS" \
        --batch-size "$BATCH" --lr 2e-4 --warmup 50 --save-every "$STEPS" --init runs/gpu2/export --decoder-only \
        --class-weight 2.0 --generated "$G" --weather 0.6 --jitter 0.5 >>"$log" 2>&1
    stamp "decoder generated=$G"
    "$PYTHON" -c "import sys; from camseg_core.checkpoint import export_pretrained; \
export_pretrained(sys.argv[1], sys.argv[2], ensemble=8)" "$R/dec_$G" "$R/export_$G" >>"$log" 2>&1
    "$PYTHON" -m camseg_core.cli.eval --data "generated:$R/data" --device "$DEVICE" --precision "$PRECISION" \
        --batch-size 32 --corruptions none --checkpoint "$R/export_$G" --out "$R/eval_$G" >>"$log" 2>&1
    stamp "eval generated=$G"
    (cd "$R" && tar czf "$OUT/eval_$G.tgz" "eval_$G" "dec_$G/config.json" "dec_$G/train_state.json")
    if [ -f "$R/export_$G/model.safetensors" ]; then
        split -b 15000000 "$R/export_$G/model.safetensors" "$OUT/model_$G.part."
    fi
done
stamp done
