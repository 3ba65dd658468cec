set -e
B=.venv/bin
$B/camseg-eval --checkpoint runs/k/export_gen --data generated:runs/dm/data --out runs/m/eval_r7_seed1 --corruptions none --no-ceilings --seed 1
$B/camseg-train vae --init runs/k/seg --decoder-only --generated 0.5 --data generated:runs/dm/data --out runs/m/gen_seed1 --steps 1500 --batch-size 8 \
  --lr 2e-4 --warmup 50 --workers 1 --class-weight 1.0 --save-every 250 --sample-every 500 --weather 0.6 --jitter 0.7 --seed 1
$B/python -c "import sys; from camseg_core.checkpoint import export_pretrained; export_pretrained(sys.argv[1], sys.argv[2], ensemble=8)" runs/m/gen_seed1 runs/m/export_seed1
$B/camseg-eval --checkpoint runs/m/export_seed1 --data generated:runs/dm/data --out runs/m/eval_seed1 --corruptions none
# later, the vote of 16 (not the shipped default):
$B/camseg-eval --checkpoint runs/k/export_gen --data generated:runs/dm/data --out runs/m/eval_r7_vote16 --corruptions none --no-ceilings --ensemble 16
