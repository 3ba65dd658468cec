#!/bin/bash
# A tenth round from round 9 (shipped): the same commands and flags as rounds 8 and 9, from round 9's export and
# baseline; the decoder run settings are in runs/r10/dec_args. Then sampler seeds 1 and 2 of the new model.
# (docs/cpu_runs/round.sh holds the commands, shared by rounds 8 to 11.)
bash docs/cpu_runs/round.sh runs/r10 runs/r9/export_gen runs/r9/baseline_more 1 2
# runs/r10/dec_args held "--generated 0.5 --class-weight 1.0" (rounds 7 to 9's decoder run settings).
# Wall times (s), nothing else running: autoencoder 939.4, segmenter 1139.0, baseline 224.7, decoder 556.9.
# results: autoencoder run ceiling 73.2 (runs/r10/ceiling_ae); after the decoder run 72.6 (72.57, 90.9 % of 79.8),
# quick mIoU 51.0 (runs/r10/ceiling_gen); full evaluation 51.7 / 50.4 / 50.1 / 48.2 / 41.9 / 42.7 / 43.1 mIoU,
# baseline 54.6 / 54.0 / 53.2 / 50.4 / 46.2 / 45.7 / 47.3 (comparison_round10.md); snow share 90.8 % (seed 0),
# 89.7 / 89.7 % (seeds 1, 2).
