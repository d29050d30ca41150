# Two commands do everything on a fresh machine:
#   make train   set up .venv, then train the default GAN (DCGAN on the built-in digits, no download)
#   make test    set up .venv, then run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: train test setup clean

setup: $(VENV)/.installed

# torch goes in first and stays pinned (constraints.txt), so nothing later swaps it for a CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	touch $@

train: setup
	$(BIN)/ganforge train $(ARGS)

test: setup
	$(BIN)/python -m pytest -q tests $(ARGS)

clean:
	rm -rf $(VENV) runs
