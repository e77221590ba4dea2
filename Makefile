# The two commands of the README: `make demo` and `make test`. Each creates .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test sim soak bench venv clean editor

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/backer demo

# The benchmark's smoke test runs Syncthing and rsync: installed from Debian's packages when
# missing (needs root or sudo; without them that one test fails and says what to run).
# Two test processes (pytest-xdist; one module stays in one process): the end-to-end tests mostly
# wait on real daemons, so the suite takes ~7 minutes instead of ~15 on 2 cores.
test: $(STAMP)
	.ci/install-bench-tools || echo "make test: could not install syncthing/rsync (see above)"
	.ci/install-browser || echo "make test: could not install chromium for the GUI tests (see above)"
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=25

sim: $(STAMP)
	$(BIN)/python -m simulations sweep --nodes 10,30,100,300,1000

# Every scenario over SEEDS seeds each (default 10000; 2 worker processes), at the soak sizes of
# simulations/soak.py (SIZE=default: the scenarios' own sizes); prints the table. Then the fault
# campaign on real processes (KILL_TRIALS kill -9 trials, FUZZ fuzz inputs): its own table.
SEEDS ?= 10000
SIZE ?= soak
KILL_TRIALS ?= 100
FUZZ ?= 1000000
soak: $(STAMP)
	$(BIN)/python -m simulations soak --seeds $(SEEDS) --size $(SIZE) --workers 2
	$(BIN)/python -m tests.fault.campaign --trials $(KILL_TRIALS) --fuzz $(FUZZ)

bench: $(STAMP)
	.ci/install-bench-tools
	$(BIN)/python benchmarks/compare.py

# The live-edit page (gossip_backer/web/static/editor.js and its licenses), rebuilt from
# web-editor/ (package.json and package-lock.json) with npm and esbuild. The built files are
# committed: `make demo` needs no Node.
editor:
	cd web-editor && npm ci --no-audit --no-fund && node build.mjs

clean:
	rm -rf $(VENV) build *.egg-info
