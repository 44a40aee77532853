# Two commands do all the set-up on a fresh machine:
#   make run    -- create .venv, install, then run the notebook suite (quick profile)
#   make test   -- create .venv, install, then run the test suite
#   make test-browser -- the notebooks' widgets in JupyterLab in a headless Chromium (after make test in CI)
#   make book   -- the executed notebooks of make run as a static HTML site: open outputs/book/index.html
#   make constraints -- rewrite constraints.txt (and environment.yml's pins) from the versions in .venv
#   make weights -- train again the quick models that ship in weights/ (notebooks 04-06 open with them; ~12 min)
#
# TORCH_SPEC overrides the PyTorch requirement, e.g. for a CUDA build:
#   make run TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
# Without it, the CPU wheel torch==2.13.0 is installed unless a torch is importable already.
# Everything else is installed at the versions of constraints.txt (torch, and what only torch needs, are not in it).
# DATASET=photos runs the notebooks on the embedded photos dataset instead of shapes (make run DATASET=photos).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?=
PROFILE ?= quick
DATASET ?=
STAMP := $(VENV)/.slrnet-installed

.PHONY: run test test-browser install book constraints weights clean-outputs

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@if [ -n "$(TORCH_SPEC)" ]; then \
	    echo "installing PyTorch from TORCH_SPEC=$(TORCH_SPEC)"; $(PY) -m pip install -q $(TORCH_SPEC); \
	elif $(PY) -c "import torch" 2>/dev/null; then \
	    echo "PyTorch already importable: $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	else \
	    echo "installing the CPU wheel torch==2.13.0"; $(PY) -m pip install -q "torch==2.13.0"; \
	fi
	@$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	@$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (slrnet)" >/dev/null
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m slrnet suite --profile $(PROFILE) $(if $(DATASET),-p dataset $(DATASET))

book: $(STAMP)
	$(PY) -m slrnet book

# constraints.txt from what .venv has installed (after an upgrade you tested); environment.yml's pins follow it
constraints:
	@test -x $(PY) || { echo "no $(VENV): run make install first"; exit 1; }
	$(PY) -m slrnet.constraints

# the quick models in weights/ and their records (slrnet.analysis.shipped), for the default dataset or DATASET=photos
weights: $(STAMP)
	$(PY) -m slrnet.analysis.shipped --dataset $(or $(DATASET),shapes)

test: $(STAMP)
	$(PY) -m pytest -q

# JupyterLab in a headless Chromium, every notebook explorer used (tests/browser). Installs Playwright (PyPI) and,
# as root with apt, Debian's chromium the first time; without a browser the test is skipped and says so.
test-browser: $(STAMP)
	@$(PY) -c "import playwright" 2>/dev/null || $(PY) -m pip install -q playwright
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "$$SLRNET_CHROMIUM" ] || \
	    { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        echo "installing Debian's chromium"; \
	        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
	        || echo "could not install chromium: the browser test will be skipped"; \
	      else echo "no chromium and no root apt-get: the browser test will be skipped"; fi; }
	$(PY) -m pytest -q -m browser tests/browser

clean-outputs:
	rm -rf outputs
