# Quick start: `make demo` (install + a real search) and `make test` (install + the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
# Data directory: ../shared/data beside this checkout when present, else $HARNESS_DATA / the per-user default.
HARNESS_DATA ?= $(shell [ -d ../shared/data ] && cd ../shared/data && pwd)
export HARNESS_DATA

.PHONY: install demo test test-fast reference-report gpu-prepare clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml examples/plugin_searcher/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e '.[test]'
	# the example searcher plug-in, found through its entry point (tests/test_plugins.py)
	$(BIN)/pip install -q --no-deps -e examples/plugin_searcher
	# the speed reference of `harness bench` (tests/test_bench.py), without its pinned dependencies
	$(BIN)/pip install -q --no-deps xautodl
	touch $@

DEMO ?= results/demo
# The quick preset on a CPU (docs/timings.md: how long, and on what machine), the paper preset on a GPU; then the report.
demo: install
	$(BIN)/harness run --searcher darts --space nb201 --out $(DEMO) \
	  --preset $$($(BIN)/python -c "import torch; print('paper' if torch.cuda.is_available() else 'quick')")
	$(BIN)/harness report $(DEMO) --out $(DEMO)/report
	@echo
	@echo "The derived cell's CIFAR-10 test accuracy per epoch: $(DEMO)/report/figures/nb201_accuracy_per_epoch.png"
	@echo "Everything (tables, figures, runs):                  $(DEMO)/report/report.html"
	@echo "Try next:"
	@echo "  $(BIN)/harness run --preset quick --seeds 3 --out $(DEMO)                 # two more seeds; seed 0 is reused"
	@echo "  $(BIN)/harness run --preset quick --searcher sd_darts --out $(DEMO)       # another searcher (harness list)"
	@echo "  $(BIN)/harness sweep sweeps/smoke16.yaml && $(BIN)/harness report        # a grid of searches, then the report"

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

# The committed reports of the reference runs, the reduced-protocol runs and the calibration study (CI checks that
# their tables are reproduced exactly from the committed runs; report.html, the same with the figures embedded, is
# not versioned).
# Made from the committed runs only (`git archive HEAD`), so that a run still going on in the tree is left out; the
# report folder is rewritten whole, so no figure of an earlier report stays behind.
REPORTED_TREES := reference reduced calibration
reference-report: install
	@for tree in $(REPORTED_TREES); do \
	  rm -rf .report-tmp results/$$tree/report && mkdir .report-tmp && \
	  git archive HEAD results/$$tree | tar x -C .report-tmp && \
	  (cd .report-tmp && ../$(BIN)/harness report results/$$tree --out ../results/$$tree/report) || exit 1; \
	done; rm -rf .report-tmp

# What a lent GPU machine needs beside the tree (.ci/gpu_session.sh; carry .gpu): a copy of the data directory's NB201
# table and CIFAR-10, wheels of what its image may lack (pydantic and its parts, PyYAML for the sweep file, for its
# Python 3.12; xautodl, the speed reference), and the commit the runs' provenance names (-dirty when the tree has
# uncommitted changes). Run it just before a lease: the commit is this tree's.
GPU_WHEELS := pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
	typing_extensions==4.16.0 pyyaml==6.0.4 xautodl==1.0.0
gpu-prepare: install
	rm -rf .gpu && mkdir -p .gpu/data .gpu/wheels
	cp -rL "$(HARNESS_DATA)/nb201" "$(HARNESS_DATA)/cifar10" .gpu/data/
	$(BIN)/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/wheels $(GPU_WHEELS)
	(git rev-parse HEAD | tr -d '\n'; git diff --quiet HEAD || printf -- '-dirty') > .gpu/commit
	@du -sh .gpu

clean:
	rm -rf $(VENV) *.egg-info
