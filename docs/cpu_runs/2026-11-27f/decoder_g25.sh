# The shipped round 7's decoder run again from the same segmenter, with a quarter of each batch generated and the
# class losses 2x (shipped: a half and 1x), then the quick ceiling check of both (clear, one sample of 4 steps).
# docs/closing_the_gap.md, "What is in the way". Run from the repository root after docs/cpu_runs/2026-11-27e/round7_jitter07.sh.
set -e
B=.venv/bin
$B/camseg-train vae --init runs/k/seg --decoder-only --generated 0.25 --data generated:runs/dm/data \
  --out runs/m/gen_g25_c2 --steps 1500 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --class-weight 2.0 \
  --save-every 250 --sample-every 500 --weather 0.6 --jitter 0.7
$B/python -c "import sys; from camseg_core.checkpoint import export_pretrained; export_pretrained(sys.argv[1], sys.argv[2], ensemble=8)" runs/m/gen_g25_c2 runs/m/export_g25_c2
Q='--data cityscapes:runs/dm/data:val --corruptions none --ensemble 1 --steps 4'
$B/camseg-eval --checkpoint runs/k/seg --out runs/k/eval_seg_ceiling $Q
$B/camseg-eval --checkpoint runs/k/export_gen --out runs/m/ceiling_r7_quick $Q
$B/camseg-eval --checkpoint runs/m/export_g25_c2 --out runs/m/ceiling_g25_c2 $Q
# results (clear; autoencoder ceiling / quick mIoU): runs/k/seg 71.0 / 50.3 (the whole fine-tune's autoencoder with
# the generator before its decoder run), runs/k/export_gen 69.5 / 49.5 (shipped), runs/m/export_g25_c2 70.4 / 48.7;
# resolution ceiling 79.8.
