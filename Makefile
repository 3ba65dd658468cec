# One place that sets up the environment from nothing and runs things in it.
#   make demo   - create .venv, generate a sample drive bag, start the node with the shipped demo model, replay the
#                 bag into it live over DDS; writes the output MCAP, report.md, metrics and PNGs under $(DEMO)
#   make test   - create .venv (torch==2.13.0 first, then the package and its extras) and run all tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
comma  := ,
# The PyPI ROS 2 wheels are only installed where no ROS distribution is sourced.
EXTRAS := test$(if $(ROS_DISTRO),,$(comma)ros)

DEMO      ?= runs/demo
DEMO_RATE ?= 0.25
BIN       := $(VENV)/bin

.PHONY: venv demo test lint clean

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

test: venv
	$(PY) -m pytest -q -ra --durations=15

lint: venv
	$(PY) -m pytest -q test/test_flake8.py test/test_pep257.py

clean:
	rm -rf $(VENV) build install log *.egg-info
