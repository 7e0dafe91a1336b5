# Doppel: `make demo` runs the built-in sample, `make test` the whole suite.
PY      := .venv/bin/python
STAMP   := .venv/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	.venv/bin/doppel demo --out demo-out

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/run.py --out bench/RESULTS.md

clean:
	rm -rf .venv .cache build *.egg-info
