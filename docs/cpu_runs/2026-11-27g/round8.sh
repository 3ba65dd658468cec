#!/bin/bash
# An eighth round from round 7 (shipped): the whole autoencoder fine-tuned twice as long with the masks weighted
# 8x and the classes 4x (round 7: 1200 steps, 4x, 2x), the generator continued on its tokens, the baseline
# continued by the same 2000 steps, the decoder run (settings in runs/r8/dec_args, chosen from the ceiling).
# (docs/cpu_runs/round.sh holds the commands, shared by rounds 8 to 11; this script held them as written
# out before that script existed.)
bash docs/cpu_runs/round.sh runs/r8 runs/k/export_gen runs/k/baseline_more
# runs/r8/dec_args held "--generated 0.5 --class-weight 1.0" (round 7's decoder run settings) when the decoder ran.
# Wall times (s): autoencoder 877.8, segmenter 1956.4 (a full evaluation ran beside it for 12 min), baseline 208.9,
# decoder 523.5.
# results: autoencoder run ceiling 72.0 (runs/r8/ceiling_ae); after the decoder run 71.1, quick mIoU 50.2 (runs/r8/ceiling_gen); full evaluation 51.1 / 50.1 / 49.5 / 48.0 / 41.6 / 42.2 / 42.2 mIoU, baseline 54.4 / 53.8 / 52.9 / 49.9 / 45.5 / 46.0 / 46.8
