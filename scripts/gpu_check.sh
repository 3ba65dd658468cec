#!/bin/sh
# One-shot GPU check of issue 10, for a session that has a CUDA machine: the CUDA tests, then the
# camseg-bench tables of the targets, before (BEFORE, the commit before the fast sampler) and after,
# each in one run, and after without CUDA graphs. Everything lands in OUT; quote card.txt with the numbers.
#   sh scripts/gpu_check.sh            (env: BEFORE=<commit> OUT=<dir> PYTHON=<python> ITERS=<n>)
set -u
BEFORE=${BEFORE:-b9c9d61}
OUT=${OUT:-runs/gpu_check}
PYTHON=${PYTHON:-python}
ITERS=${ITERS:-10}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/card.txt"
"$PYTHON" -m pytest -q -p no:cacheprovider -m cuda test/test_cuda.py -rs 2>&1 | tee "$OUT/cuda_tests.txt"

rm -rf "$OUT/before" && mkdir -p "$OUT/before"
git archive "$BEFORE" camseg_core | tar -x -C "$OUT/before"
HERE=$(pwd)
SHIPPED="$HERE/camseg_core/assets/tiny_synth"
PAPER=paper=num_iter:1,steps:100,scheduler:ddpm
FASTEST=fastest=num_iter:1,steps:4,scheduler:ddim

# tree name, then extra camseg-bench flags
tables() {
    tree=$1; shift
    dir=$HERE; [ "$tree" = before ] && dir="$HERE/$OUT/before"
    run() { name=$1; shift; (cd "$dir" && "$PYTHON" -m camseg_core.cli.bench --device cuda --iters "$ITERS" \
        --json "$HERE/$OUT/$tree-$name.json" "$@") 2>&1 | grep -v 'timing' | tee -a "$HERE/$OUT/tables.txt"; }
    echo "== $tree $*" | tee -a "$OUT/tables.txt"
    run base-bf16 --preset base --size 1024x2048 --precision bf16 --setting "$PAPER" --setting "$FASTEST" "$@"
    run base-fp32 --preset base --size 1024x2048 --precision fp32 --setting "$PAPER" "$@"
    run base-bf16-b8 --preset base --size 1024x2048 --precision bf16 --batch-size 8 --setting "$FASTEST" "$@"
    run shipped-bf16 --checkpoint "$SHIPPED" --size 720x1280 --precision bf16 --setting "$PAPER" \
        --setting "$FASTEST" "$@"
}
: > "$OUT/tables.txt"
tables before
tables after
tables after-eager --no-graphs
echo "wrote $OUT/card.txt, $OUT/cuda_tests.txt, $OUT/tables.txt and the JSON reports"
