# Two commands on a fresh clone (Linux or macOS, Python >= 3.10):
#   make demo   trains the built-in demo scene; results in results/demo/
#   make test   runs the whole test suite
# Both create .venv on first use (scripts/setup_env.sh: torch, the project with every extra, splat-transform
# in .node/ when npm exists, the compiled CPU rasterizer); later runs reuse it. `make setup` re-checks it.
# Settings: VENV, PYTHON, TORCH, TORCH_BUILD, TORCH_INDEX_URL, NPM (see scripts/setup_env.sh); ARGS is passed
# on: make demo ARGS="--max-steps 500", make test ARGS="-x tests/test_render.py".

VENV ?= .venv
PYTHON ?= python3
export VENV PYTHON TORCH TORCH_BUILD TORCH_INDEX_URL NPM
STAMP := $(VENV)/.gspruner-setup

.PHONY: demo test setup help

demo: $(STAMP)
	$(VENV)/bin/gspruner train $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -ra $(ARGS)

setup:
	bash scripts/setup_env.sh

$(STAMP): pyproject.toml scripts/setup_env.sh
	bash scripts/setup_env.sh

help:
	@sed -n '1,8p' Makefile
