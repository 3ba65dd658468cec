# One place that sets up the environment from nothing and runs things in it.
#   make demo   - create .venv, generate a sample drive bag, start the node with the shipped demo model, replay the
#                 bag into it live over DDS; writes the output MCAP, report.md, metrics and PNGs under $(DEMO)
#   make test   - create .venv (torch==2.13.0 first, then the package and its extras) and run all tests
#   make demo-model - retrain the shipped demo model from generated scenes (recipes/demo.yaml, about 10.4 hours on 2
#                 CPU cores) into $(MODEL_RUN), with the evaluation of it and of the discriminative baseline
#   make gpu-recipe - the same on one GPU machine in under 10 minutes at 128x256 (recipes/gpu.yaml)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
comma  := ,
# The PyPI ROS 2 wheels are only installed where no ROS distribution is sourced.
EXTRAS := test$(comma)onnx$(if $(ROS_DISTRO),,$(comma)ros)

DEMO      ?= runs/demo
DEMO_RATE ?= 0.25
BIN       := $(VENV)/bin

.PHONY: venv demo demo-model gpu-wheels gpu-recipe test lint clean

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

# The exact recipe of camseg_core/assets/tiny_synth (see its MODEL_CARD.md), in recipes/demo.yaml; $(MODEL_RUN)/export
# holds the model as shipped (float16 weights, under 20 MB, default sampler: a vote of 8 samples at temperature
# 0.8): copy its two files there to ship a retrained model. A second `make demo-model` skips the finished stages and
# resumes an interrupted one.
MODEL_RUN ?= runs/demo_model
demo-model: venv
	$(BIN)/camseg-train recipe recipes/demo.yaml --out $(MODEL_RUN)

# One GPU machine (16 cores), under 10 minutes: recipes/gpu.yaml into $(GPU_RUN) (summary.md: the machine, each
# stage's wall time and key metrics, the comparison table). Needs no venv: the GPU machine's python3 runs it from
# this checkout, and where diffusers or albumentations do not import, the cp312 wheels carried in $(WHEELS) are
# installed into $(WHEEL_SITE) first (see the README). Change a setting with RECIPE_FLAGS='--set vae_steps=4000';
# TOY=1 shrinks them all for a CPU (test/test_gpu_recipe.py).
GPU_RUN    ?= runs/gpu_recipe
WHEELS     ?= .whl
WHEEL_SITE ?= /tmp/camseg-site
NEEDED     ?= diffusers albumentations
RECIPE_PY  ?= $(if $(wildcard $(PY)),$(PY),python3)
empty :=
space := $(empty) $(empty)
gpu-wheels:
	@$(RECIPE_PY) -c "import $(subst $(space),$(comma),$(strip $(NEEDED)))" 2>/dev/null || { \
		ls $(WHEELS)/*.whl >/dev/null 2>&1 || { echo "gpu-wheels: $(NEEDED) do not import and $(WHEELS) holds no \
wheels; download them as the README's 'One GPU recipe' section says" >&2; exit 1; }; \
		$(RECIPE_PY) -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
			--target $(WHEEL_SITE) $(WHEELS)/*.whl; }

gpu-recipe: gpu-wheels
	PYTHONPATH=$(WHEEL_SITE):$(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH)) NO_ALBUMENTATIONS_UPDATE=1 \
		$(RECIPE_PY) -m camseg_core.cli.train recipe recipes/gpu.yaml --out $(GPU_RUN) \
		$(if $(filter-out 0,$(TOY)),--toy) $(RECIPE_FLAGS)

test: venv
	$(PY) -m pytest -q -ra --durations=15

lint: venv
	$(PY) -m pytest -q test/test_flake8.py test/test_pep257.py

clean:
	rm -rf $(VENV) build install log *.egg-info
