# lazyrich — `make run` and `make test` set up .venv on first use, then run the main job / the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export WANDB_MODE ?= offline

.PHONY: run test test-fast browser lint bench bench-slurm slurm-up slurm-down figures docs clean distclean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,slurm,docs,dashboards]'
	touch $(STAMP)

## run: the main job — a small benchmark suite with theory overlay; prints a table, writes metrics and plots
run: $(STAMP)
	$(BIN)/lazyrich bench suite=default

## test: the whole test suite (W&B disabled)
test: $(STAMP) browser
	WANDB_MODE=disabled $(BIN)/python -m pytest -q

## test-fast: the inner loop, every test not marked slow (under 90 s on 2 cores)
test-fast: $(STAMP)
	WANDB_MODE=disabled $(BIN)/python -m pytest -q -m "not slow"

## browser: headless Chromium for the docs-site test, installed with apt when missing and run as root
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

lint: $(STAMP)
	$(BIN)/ruff check lazyrich tests benchmarks

## bench: performance benchmarks, each a ratio against its baseline in the same process
bench: $(STAMP)
	$(BIN)/python -m benchmarks.perf --out bench_results

## bench-slurm: 262,144 networks as 16 shards on the local SLURM against one process (about 15 minutes here)
bench-slurm: $(STAMP)
	$(BIN)/python -m benchmarks.slurm.shards --out bench_results/slurm

## slurm-up / slurm-down: a one-node SLURM on this machine (root; installs slurm-wlm and munge with apt if missing)
slurm-up:
	bash benchmarks/slurm/local_cluster.sh up
slurm-down:
	bash benchmarks/slurm/local_cluster.sh down

## docs: build the documentation site into site/ (--strict: a broken link or reference fails the build)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## figures: regenerate every paper figure into figures/
figures: $(STAMP)
	$(BIN)/python -m lazyrich.figures --out figures

clean:
	rm -rf outputs multirun wandb bench_results figures site .pytest_cache .hypothesis

distclean: clean
	rm -rf $(VENV) *.egg-info
