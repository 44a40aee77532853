# Two commands do all the set-up on a fresh machine:
#   make run    -- create .venv, install, then run the notebook suite (quick profile)
#   make test   -- create .venv, install, then run the test suite
#
# TORCH_SPEC overrides the PyTorch requirement, e.g. for a CUDA build:
#   make run TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
# Without it, the CPU wheel torch==2.13.0 is installed unless a torch is importable already.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?=
PROFILE ?= quick
STAMP := $(VENV)/.slrnet-installed

.PHONY: run test install clean-outputs

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@if [ -n "$(TORCH_SPEC)" ]; then \
	    echo "installing PyTorch from TORCH_SPEC=$(TORCH_SPEC)"; $(PY) -m pip install -q $(TORCH_SPEC); \
	elif $(PY) -c "import torch" 2>/dev/null; then \
	    echo "PyTorch already importable: $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	else \
	    echo "installing the CPU wheel torch==2.13.0"; $(PY) -m pip install -q "torch==2.13.0"; \
	fi
	@$(PY) -m pip install -q -e ".[dev]"
	@$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (slrnet)" >/dev/null
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m slrnet suite --profile $(PROFILE)

test: $(STAMP)
	$(PY) -m pytest -q

clean-outputs:
	rm -rf outputs
