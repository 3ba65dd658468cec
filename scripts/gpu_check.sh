#!/bin/sh
# One-shot check for a session that has a GPU machine, inside one device call of at most 10 minutes:
#   1. the GPU recipe (recipes/gpu.yaml) with a time limit, into RUN (first: it is what the call is for),
#   2. the CUDA tests (pytest -m cuda test/test_cuda.py),
#   3. camseg-bench of the shipped model and of the recipe's export at 720x1280, bf16,
#   4. everything that matters packed into OUT in at most 8 files (what a device call brings back):
#      card.txt (card, tests' summary, benchmark tables), cuda_tests.txt, recipe.txt (the recipe's output),
#      results.tgz (summary, comparison, evaluations, logs, configs) and the export's weights in 15 MB parts
#      (model.part.*; join them with cat).
# Steps 2 and 3 get what is left of BUDGET seconds (from the start), each at most its own limit, and are
# skipped with a line in card.txt when less than 10 s is left.
#   sh scripts/gpu_check.sh   (env: OUT, RUN, PYTHON, BUDGET, TESTS_LIMIT and RECIPE_LIMIT (s), BENCH (0: none),
#                              BENCH_DEVICE, BENCH_SIZE,
#                              TOY=1 for a CPU-sized try, RECIPE_FLAGS, e.g. '--set vae_steps=4000')
set -u
begin=$(date +%s)
OUT=${OUT:-runs/gpu_check}
RUN=${RUN:-/tmp/camseg_gpu_recipe}
PYTHON=${PYTHON:-python3}
RECIPE_LIMIT=${RECIPE_LIMIT:-500}
BUDGET=${BUDGET:-570}
BENCH_DEVICE=${BENCH_DEVICE:-cuda}
BENCH_SIZE=${BENCH_SIZE:-720x1280}
TESTS_LIMIT=${TESTS_LIMIT:-45}
BENCH=${BENCH:-1}
export PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)"
mkdir -p "$OUT"
# diffusers, albumentations and rosbags from the carried cp312 wheels where they do not import (README)
if ! "$PYTHON" -c 'import diffusers, albumentations, rosbags' 2>/dev/null && [ -d .whl ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/camseg-site .whl/*.whl && export PYTHONPATH="/tmp/camseg-site:$PYTHONPATH"
fi
card="$OUT/card.txt"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; nproc; "$PYTHON" --version; } \
    >"$card"
# left LIMIT: the seconds step may take, at most LIMIT and what is left of BUDGET
left() { rest=$((BUDGET - ($(date +%s) - begin))); [ "$rest" -lt "$1" ] && echo "$rest" || echo "$1"; }

timeout "$RECIPE_LIMIT" "$PYTHON" -m camseg_core.cli.train recipe recipes/gpu.yaml --out "$RUN" \
    ${TOY:+--toy} ${RECIPE_FLAGS:-} >"$OUT/recipe.txt" 2>&1
echo "recipe: exit status $? after $(($(date +%s) - begin)) s (limit $RECIPE_LIMIT s)" | tee -a "$card"
if [ -f "$RUN/export/model.safetensors" ]; then
    split -b 15000000 "$RUN/export/model.safetensors" "$OUT/model.part."
fi
(cd "$RUN" 2>/dev/null && tar czf - --ignore-failed-read summary.md summary.json stages comparison logs */config.json \
    */train_state.json eval_*/*.json eval_*/*.md eval_*/*.png 2>/dev/null) >"$OUT/results.tgz"

limit=$(left "$TESTS_LIMIT")
if [ "$limit" -ge 10 ]; then
    timeout "$limit" "$PYTHON" -m pytest -q -p no:cacheprovider -m cuda test/test_cuda.py -rs \
        >"$OUT/cuda_tests.txt" 2>&1
    tail -n 1 "$OUT/cuda_tests.txt" >>"$card"
else
    echo "cuda tests: skipped, ${limit} s left of the budget" >>"$card"
fi

bench() {
    limit=$(left 25)
    if [ "$limit" -lt 10 ]; then
        echo "skipped, ${limit} s left of the budget" >>"$card"
        return
    fi
    timeout "$limit" "$PYTHON" -m camseg_core.cli.bench --device "$BENCH_DEVICE" --precision bf16 --iters 10 \
        --size "$BENCH_SIZE" --json /tmp/camseg_bench.json "$@" 2>&1 | grep -v 'timing' >>"$card"
}
if [ "$BENCH" = 1 ]; then
    echo "== camseg-bench, shipped model" >>"$card"
    bench --checkpoint camseg_core/assets/tiny_synth --setting paper=num_iter:1,steps:100,scheduler:ddpm \
        --setting fastest=num_iter:1,steps:4,scheduler:ddim --setting default=num_iter:1
fi
if [ "$BENCH" = 1 ] && [ -f "$RUN/export/model.safetensors" ]; then
    echo "== camseg-bench, the recipe's export" >>"$card"
    bench --checkpoint "$RUN/export" --setting fastest=num_iter:1,steps:4,scheduler:ddim \
        --setting default=num_iter:1
fi
echo "gpu_check: wrote $(ls "$OUT" | tr '\n' ' ')after $(($(date +%s) - begin)) s" | tee -a "$card"
