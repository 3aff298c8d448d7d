# Two commands do everything: `make demo` and `make test`. Each creates .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= ../shared/data/ml-100k
export HF_HUB_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: demo test lint venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev,eval,langchain]'
	touch $@

## demo: ingest MovieLens 100K into Chroma, then recommend for a new user with 3 likes
demo: venv
	$(VENV)/bin/recagent ingest --movielens $(DATA)
	$(VENV)/bin/recagent recommend --history 1,50,181 --k 10

## test: lint, type-check, then unit and integration tests (real Chroma, real local LLM)
test: venv
	$(VENV)/bin/ruff check recagent retrieval eval tests
	$(VENV)/bin/mypy
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build dist *.egg-info
