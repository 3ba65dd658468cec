#!/bin/bash
# An eleventh round from round 10 (shipped): the same commands and flags as rounds 8 to 10, from round 10's export
# and baseline; the decoder run settings are in runs/r11/dec_args. Then sampler seeds 1 to 3 of the new model.
# (docs/cpu_runs/round.sh holds the commands, shared by rounds 8 to 11.)
bash docs/cpu_runs/round.sh runs/r11 runs/r10/export_gen runs/r10/baseline_more 1 2 3
