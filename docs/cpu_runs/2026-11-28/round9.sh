#!/bin/bash
# A ninth round from round 8 (shipped): the same commands and autoencoder flags as round 8, from round 8's
# export and baseline; the decoder run settings are in runs/r9/dec_args.
# (docs/cpu_runs/round.sh holds the commands, shared by rounds 8 to 11.)
bash docs/cpu_runs/round.sh runs/r9 runs/r8/export_gen runs/r8/baseline_more
# runs/r9/dec_args held "--generated 0.5 --class-weight 1.0" (round 7's and round 8's decoder run settings).
# Wall times (s), nothing else running: autoencoder 1001.2, segmenter 1225.9, baseline 227.0, decoder 590.6.
# results: autoencoder run ceiling 72.7 (runs/r9/ceiling_ae); after the decoder run 71.9 (71.94, 90.1 % of 79.8),
# quick mIoU 51.1 (runs/r9/ceiling_gen); full evaluation 51.5 / 50.4 / 49.9 / 48.4 / 41.8 / 42.7 / 42.7 mIoU,
# baseline 54.6 / 53.7 / 53.0 / 50.2 / 46.2 / 45.5 / 47.0 (comparison_round9.md)
