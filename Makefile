# The front door: `make demo` runs Lambdalet on a real single-node cluster, `make test` tests it.
.PHONY: setup demo test lint crds cluster-up cluster-down clean

VENV := .venv
PY := $(VENV)/bin

setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml constraints.txt
	e2e/cluster/install-deps.sh
	python3 -m venv $(VENV)
	$(PY)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

test: setup
	e2e/run-tests.sh

demo: setup
	e2e/demo.sh

lint: setup
	TIERS=static e2e/run-tests.sh

crds: setup
	$(PY)/lambdalet crds
	$(PY)/lambdalet crds --output charts/lambdalet/crds

cluster-up: setup
	e2e/cluster/build.sh >/dev/null
	e2e/cluster/cluster.sh up

cluster-down:
	e2e/cluster/cluster.sh down

clean: cluster-down
	rm -rf $(VENV)
