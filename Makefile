# `make demo` and `make test` create .venv on first use and install SparKer into it.
# The install is redone only when pyproject.toml or constraints.txt change (stamp file).

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.sparker-installed

.PHONY: demo test venv

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -c constraints.txt -e '.[test,parquet,plot]'
	touch $(STAMP)

demo: venv
	$(VENV)/bin/sparker demo --force

test: venv
	$(VENV)/bin/python -m pytest -q
