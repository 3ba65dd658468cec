# One place that sets up the environment from nothing and runs things in it.
#   make test   - create .venv (torch==2.13.0 first, then the package and its extras) and run all tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
comma  := ,
# The PyPI ROS 2 wheels are only installed where no ROS distribution is sourced.
EXTRAS := test$(if $(ROS_DISTRO),,$(comma)ros)

.PHONY: venv test lint clean

$(VENV)/.stamp: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

venv: $(VENV)/.stamp

test: venv
	$(PY) -m pytest -q -ra --durations=15

lint: venv
	$(PY) -m pytest -q test/test_flake8.py test/test_pep257.py

clean:
	rm -rf $(VENV) build install log *.egg-info
