# Every target sets up its own virtual environment first, so on a fresh machine
# `make demo` and `make test` are all a newcomer needs (Python 3.10+, make, a C compiler).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.socketeer-installed
BENCH_STAMP := $(VENV)/.socketeer-bench-installed
SOURCES := src tests benchmarks examples fuzz

.PHONY: venv demo test check style coverage bench soak fuzz clean

$(STAMP): pyproject.toml setup.py src/socketeer/protocol/_speedups.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/python -m socketeer demo

check: venv
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/mypy

# The protocol's tests run twice: with the C speedups, then on the pure-Python reference alone.
test: check
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	SOCKETEER_NO_SPEEDUPS=1 $(BIN)/python -m pytest -q tests/protocol

style: venv
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

coverage: venv
	$(BIN)/python -m pip install --quiet coverage
	$(BIN)/python -m coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/python -m coverage report --show-missing

# The echo benchmark compares with picows, aiohttp and uvloop: the "bench" extra; and its
# threaded clients with websocket-client, which comes with "dev" (through "test").
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/protocol.py
	$(BIN)/python benchmarks/echo.py
	$(BIN)/python benchmarks/echo.py --compression
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/rpc.py

# Load and soak (about 20 minutes; not part of bench or test): 10,000 idle connections,
# 1,000 clients echoing for 10 minutes, then a graceful shutdown under that load.
soak: $(BENCH_STAMP)
	$(BIN)/python benchmarks/soak.py

# Coverage-guided fuzzing with atheris (docs/fuzzing.md): each target of fuzz/ runs for
# FUZZ_SECONDS seconds on a copy of its seed corpus; findings land in fuzz/artifacts/.
FUZZ_SECONDS ?= 60

fuzz: venv
	$(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) build src/*.egg-info src/socketeer/protocol/*.so
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
