# Doppel: `make demo` runs the built-in sample, `make test` the whole suite.
PY      := .venv/bin/python
STAMP   := .venv/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml renderer/faces/_cascade.c
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -c "from renderer.faces import models; models.shape_model(68); models.shape_model(5); models.hog_detector()"
	touch $(STAMP)

# DEMO_ARGS: extra `doppel demo` flags, e.g. make demo DEMO_ARGS="--train-iterations 30 --json"
DEMO_OUT  ?= demo-out
DEMO_ARGS ?=
demo: $(STAMP)
	.venv/bin/doppel demo --out $(DEMO_OUT) $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

# BENCH_ARGS: e.g. make bench BENCH_ARGS=--collect-only (assemble RESULTS.md from bench/results/ without re-running)
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) bench/run.py --out bench/RESULTS.md $(BENCH_ARGS)

clean:
	rm -rf .venv .cache build *.egg-info
