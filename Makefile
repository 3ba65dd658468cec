# One place that sets up the environment from nothing and runs things in it.
#   make demo   - create .venv, generate a sample drive bag, start the node with the shipped demo model, replay the
#                 bag into it live over DDS; writes the output MCAP, report.md, metrics and PNGs under $(DEMO)
#   make test   - create .venv (torch==2.13.0 first, then the package and its extras) and run all tests
#   make demo-model - retrain the shipped demo model from generated scenes (about 10.4 hours on 2 CPU cores) into
#                 $(MODEL_RUN), with the evaluation of it and of the discriminative baseline
#   make gpu-recipe - the same on one GPU machine in under 10 minutes at 128x256 (scripts/gpu_recipe.py)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
comma  := ,
# The PyPI ROS 2 wheels are only installed where no ROS distribution is sourced.
EXTRAS := test$(comma)onnx$(if $(ROS_DISTRO),,$(comma)ros)

DEMO      ?= runs/demo
DEMO_RATE ?= 0.25
BIN       := $(VENV)/bin

.PHONY: venv demo demo-model gpu-recipe test lint clean

$(VENV)/.stamp: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

venv: $(VENV)/.stamp

# DEMO_RATE is the playback speed: 0.25 lets a 2-core CPU answer most of the 10 fps drive; use 1 on a GPU.
demo: venv
	rm -rf $(DEMO)
	$(BIN)/camseg-synth --bag $(DEMO)/drive --frames 80 --fps 10 --size 256x512 --seed 7
	$(BIN)/camseg-bag-replay $(DEMO)/drive --image-topic /camera/image_raw --label-topic /camera/labels \
		--start-node --rate $(DEMO_RATE) --out $(DEMO)/replay --record
	@echo "demo: open $(DEMO)/replay/report.md, $(DEMO)/replay/samples.png; the output bag is $(DEMO)/replay/replayed"

# The exact recipe of camseg_core/assets/tiny_synth (see its MODEL_CARD.md); $(MODEL_RUN)/export holds the model as
# shipped (weights stored as float16, under 20 MB, default sampler: a vote of 8 samples at temperature 0.8): copy
# its two files there to ship a retrained model.
MODEL_RUN ?= runs/demo_model
# The export of training run $(1) as shipped, into $(2): float16 weights, default sampler a vote of 8 (the model
# card: against a vote of 4, it keeps CAM-Seg's ECE within 1 point of the baseline's in snow, rain and at night)
# at temperature 0.8 (chosen on a tuning set of its own, seed 3: docs/cpu_runs/2026-11-28c/temperature.sh).
define EXPORT
$(PY) -c "import sys; from camseg_core.checkpoint import export_pretrained; \
	export_pretrained(sys.argv[1], sys.argv[2], ensemble=8, temperature=0.8)" $(1) $(2)
endef
# One later round of the demo recipe: the whole autoencoder of export $(1) fine-tuned with the masks weighted up (the vae
# run keeps its generator), the generator continued 2000 steps on the new tokens, the decoder tuned on generated tokens
# again; runs in $(MODEL_RUN)/$(2)_*, the export in $(3). The baseline $(4) gets the same 2000 steps, into
# $(MODEL_RUN)/baseline_$(2). $(5): extra camseg-train flags of the generator, decoder and baseline runs; $(6): the
# autoencoder run's steps and loss weights (default: 1200 steps, classes 2x, masks 4x).
define ROUND
$(BIN)/camseg-train vae --init $(1) --data generated:$(SYNTH) --out $(MODEL_RUN)/$(2)_ae \
	$(or $(6),--steps 1200 --class-weight 2.0 --mask-weight 4) --batch-size 8 \
	--lr 3e-4 --warmup 20 --workers 1 --save-every 200 --sample-every 1000 --low-light 0
$(BIN)/camseg-train segmenter --init $(MODEL_RUN)/$(2)_ae --image-stem 2 --pixel-stem 128 --data generated:$(SYNTH) \
	--out $(MODEL_RUN)/$(2)_seg --image-size 64x128 --steps 2000 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 \
	--save-every 250 --sample-every 1000 $(5)
$(BIN)/camseg-train vae --init $(MODEL_RUN)/$(2)_seg --decoder-only --generated 0.5 --data generated:$(SYNTH) \
	--out $(MODEL_RUN)/$(2)_gen --steps 1500 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --class-weight 1.0 \
	--save-every 250 --sample-every 500 $(5)
$(call EXPORT,$(MODEL_RUN)/$(2)_gen,$(3))
$(BIN)/camseg-train baseline --init $(4) --data generated:$(SYNTH) --out $(MODEL_RUN)/baseline_$(2) --image-size 64x128 \
	--steps 2000 --batch-size 8 --lr 5e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000 $(5)
endef
SYNTH     := $(MODEL_RUN)/data
demo-model: venv
	$(BIN)/camseg-synth --out $(SYNTH) --num 1000 --split train --seed 1 --size 128x256 --conditions clear
	$(BIN)/camseg-synth --out $(SYNTH) --num 60 --split val --seed 2 --size 256x512 \
		--conditions clear,fog,snow,rain,night
	$(BIN)/camseg-train vae --data generated:$(SYNTH) --out $(MODEL_RUN)/vae --preset tiny --image-size 64x128 \
		--steps 1200 --batch-size 8 --lr 5e-4 --warmup 50 --workers 1 --class-weight 1.0 --save-every 300 \
		--sample-every 300 --low-light 0
	$(BIN)/camseg-train segmenter --init $(MODEL_RUN)/vae --data generated:$(SYNTH) --out $(MODEL_RUN)/camseg \
		--image-size 64x128 --steps 5000 --batch-size 8 --lr 4e-4 --warmup 150 --cache-latents --cache-copies 2 \
		--image-stem 2 --pixel-stem 128 --save-every 250 --sample-every 1000 --low-light 0
	$(BIN)/camseg-train vae --init $(MODEL_RUN)/camseg --decoder-only --data generated:$(SYNTH) \
		--out $(MODEL_RUN)/camseg_dec --steps 2000 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --class-weight 1.0 \
		--save-every 500 --sample-every 1000 --low-light 0
	$(BIN)/camseg-train segmenter --init $(MODEL_RUN)/camseg_dec --image-stem 2 --pixel-stem 128 \
		--data generated:$(SYNTH) --out $(MODEL_RUN)/camseg_ll --image-size 64x128 --steps 2000 --batch-size 8 \
		--lr 2e-4 --warmup 50 --workers 1 --save-every 250 --sample-every 1000
	$(BIN)/camseg-train vae --init $(MODEL_RUN)/camseg_ll --decoder-only --generated 0.5 --data generated:$(SYNTH) \
		--out $(MODEL_RUN)/camseg_gen --steps 1500 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --class-weight 1.0 \
		--save-every 250 --sample-every 500
	$(BIN)/camseg-train baseline --data generated:$(SYNTH) --out $(MODEL_RUN)/baseline --preset tiny \
		--image-size 64x128 --steps 2000 --batch-size 8 --warmup 100 --workers 1 --save-every 250 --sample-every 500 \
		--low-light 0
	$(BIN)/camseg-train baseline --data generated:$(SYNTH) --out $(MODEL_RUN)/baseline --preset tiny \
		--image-size 64x128 --steps 5000 --batch-size 8 --warmup 100 --workers 1 --save-every 250 --sample-every 1000 \
		--low-light 0 --resume --allow-change steps
	$(BIN)/camseg-train baseline --init $(MODEL_RUN)/baseline --data generated:$(SYNTH) --out $(MODEL_RUN)/baseline_ll \
		--image-size 64x128 --steps 2000 --batch-size 8 --lr 5e-4 --warmup 50 --workers 1 --save-every 250 \
		--sample-every 1000
	$(call EXPORT,$(MODEL_RUN)/camseg_gen,$(MODEL_RUN)/export_round1)
	$(call ROUND,$(MODEL_RUN)/export_round1,round2,$(MODEL_RUN)/export_round2,$(MODEL_RUN)/baseline_ll)
	$(call ROUND,$(MODEL_RUN)/export_round2,round3,$(MODEL_RUN)/export_round3,$(MODEL_RUN)/baseline_round2)
	$(call ROUND,$(MODEL_RUN)/export_round3,round4,$(MODEL_RUN)/export_round4,$(MODEL_RUN)/baseline_round3,--weather 0.6)
	$(call ROUND,$(MODEL_RUN)/export_round4,round5,$(MODEL_RUN)/export_round5,$(MODEL_RUN)/baseline_round4,--weather 0.6)
	$(call ROUND,$(MODEL_RUN)/export_round5,round6,$(MODEL_RUN)/export_round6,$(MODEL_RUN)/baseline_round5,--weather 0.6 --jitter 0.5)
	$(call ROUND,$(MODEL_RUN)/export_round6,round7,$(MODEL_RUN)/export_round7,$(MODEL_RUN)/baseline_round6,--weather 0.6 --jitter 0.7)
	$(call ROUND,$(MODEL_RUN)/export_round7,round8,$(MODEL_RUN)/export_round8,$(MODEL_RUN)/baseline_round7,--weather 0.6 --jitter 0.7,--steps 2400 --class-weight 4.0 --mask-weight 8)
	$(call ROUND,$(MODEL_RUN)/export_round8,round9,$(MODEL_RUN)/export_round9,$(MODEL_RUN)/baseline_round8,--weather 0.6 --jitter 0.7,--steps 2400 --class-weight 4.0 --mask-weight 8)
	$(call ROUND,$(MODEL_RUN)/export_round9,round10,$(MODEL_RUN)/export_round10,$(MODEL_RUN)/baseline_round9,--weather 0.6 --jitter 0.7,--steps 2400 --class-weight 4.0 --mask-weight 8)
	$(call ROUND,$(MODEL_RUN)/export_round10,round11,$(MODEL_RUN)/export,$(MODEL_RUN)/baseline_round10,--weather 0.6 --jitter 0.7,--steps 2400 --class-weight 4.0 --mask-weight 8)
	$(BIN)/camseg-eval --checkpoint $(MODEL_RUN)/export --data generated:$(SYNTH) --out $(MODEL_RUN)/eval_camseg \
		--corruptions all --severities 3
	$(BIN)/camseg-eval --checkpoint $(MODEL_RUN)/baseline_round11 --data generated:$(SYNTH) --out $(MODEL_RUN)/eval_baseline \
		--corruptions all --severities 3
	$(BIN)/camseg-compare camseg=$(MODEL_RUN)/eval_camseg baseline=$(MODEL_RUN)/eval_baseline \
		--out $(MODEL_RUN)/comparison

# One GPU machine (16 cores), under 10 minutes: data with all cores, vae + segmenter + baseline at 128x256, the float16
# export, both evaluated on generated clear / fog x3 / snow / rain / night, comparison table and per-stage wall times in
# GPU_RUN/summary.md (default runs/gpu_recipe). Needs no venv (the GPU machine's python3 runs it; missing packages come from carried wheels,
# see the README). Sizes, steps and batches are variables read by scripts/gpu_recipe.py (its SETTINGS), e.g.
# make gpu-recipe VAE_STEPS=2000; TOY=1 shrinks them all for a CPU (test/test_gpu_recipe.py).
RECIPE_PY ?= $(if $(wildcard $(PY)),$(PY),python3)
gpu-recipe:
	$(RECIPE_PY) scripts/gpu_recipe.py

test: venv
	$(PY) -m pytest -q -ra --durations=15

lint: venv
	$(PY) -m pytest -q test/test_flake8.py test/test_pep257.py

clean:
	rm -rf $(VENV) build install log *.egg-info
