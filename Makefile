# Two commands do all the set-up: `make demo` and `make test` (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
FAST_PILLOW := $(VENV)/.fast-pillow
OUT ?= out/sample_data

.PHONY: install system-deps demo lint test test-fast fast-pillow clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first, pinned: a CPU build where one is on disk; an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[test]"
	# Opted in to pillow-simd (`make fast-pillow`)? pip has just put Pillow back: re-apply it.
	if [ -f $(FAST_PILLOW) ]; then bash benchmarks/setup_pillow_simd.sh $(VENV); fi
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The whole tool on sample_data/: a val split, classes clamped between a floor (augmented
# variants) and a cap, shards, Kornia augmentation, the FiftyOne dataset and the report.
demo: $(STAMP)
	$(VENV)/bin/curate run sample_data -o $(OUT) --config sample_data/curate.toml

# Debian packages the tests use (headless Chromium for the report screenshot).
system-deps:
	bash .ci/setup-system.sh

# ruff (pyflakes, import order, bugbear, blind except) and mypy (strict on the core): pyproject.toml
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: system-deps lint
	$(VENV)/bin/pytest -q  # exit 5 (no tests collected) fails the target like any failure

test-fast: $(STAMP)
	$(VENV)/bin/pytest -q -m "not slow"

# Opt-in: pillow-simd, built here with AVX2 (first build ~4 min), in place of Pillow: 4-9x faster
# resize, ~2x blur; decode, encode and hashing no faster (benchmarks/RESULTS.md). The marker makes every
# reinstall by `make install` re-apply it, from the wheel it keeps, after pip puts Pillow back.
# Undo: rm $(FAST_PILLOW); $(PY) -m pip uninstall -y pillow-simd; $(PY) -m pip install pillow
fast-pillow: $(STAMP)
	touch $(FAST_PILLOW)
	bash benchmarks/setup_pillow_simd.sh $(VENV)

clean:
	rm -rf out
