# SCBDA — the commands a person types. Everything installs itself into .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)
export SCBDA_HOME ?= $(CURDIR)/.scbda
MINUTES ?= 30
RATE ?= 150000
PYTEST_ARGS ?=
SHIFT_DAYS ?= 400

.PHONY: install run test test-fast test-date-shift bench soak chaos services-up services-down browser compose-check clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,docker]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# Debian packages the tests need, installed when their command is missing (as root, or through sudo). A failed
# install prints how to do it by hand; under CI=true (what CI sets) it fails the run, since tests must not skip there.
APT_INSTALL = command -v $(1) >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  { $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; } \
	  || { echo "$(1) could not be installed (run: sudo apt-get install -y $(1)); $(2)" >&2; [ "$${CI:-}" != true ]; }; }

# Headless Chromium for the browser tests, benchmarks and screenshots.
browser:
	@$(call APT_INSTALL,chromium,the browser tests will skip)

# docker-compose v1 validates docker/docker-compose.yml offline (no engine needed).
compose-check:
	@$(call APT_INSTALL,docker-compose,the compose validation tests will skip)

## make run: embedded services + dagster dev (+ dashboard); Ctrl-C stops everything it started.
## make run CLUSTER=1: the same on a Spark standalone cluster + MongoDB replica set (`scbda services up --cluster`;
## `make services-down` stops the cluster).
CLUSTER ?=
run: install
ifeq ($(CLUSTER),1)
	set -a && eval "$$($(BIN)/scbda services up --cluster)" && set +a && $(BIN)/scbda run
else
	$(BIN)/scbda run
endif

## make test: the whole pytest suite against real mongod, redis-server and Spark.
test: install browser compose-check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make test-fast: the inner loop: real mongod and redis-server, no Spark, no browser, no cluster, no slow tests
## (markers: conftest adds `spark` / `browser` by fixture use). `make test` still runs everything.
FAST_MARKERS := not spark and not browser and not cluster and not slow
test-fast: install
	$(BIN)/python -m pytest -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

## make test-date-shift: the same suite with the wall clock a year ahead (no test may depend on today's date).
test-date-shift: install browser compose-check
	$(BIN)/python -m pytest --shift-clock-days=$(SHIFT_DAYS) $(PYTEST_ARGS)

## make bench: benchmarks (not tests); prints a table and writes bench/report.json.
bench: install browser
	$(BIN)/python -m scbda_assets_tests.bench.run_all --report bench/report.json

## make soak MINUTES=N RATE=R: the whole pipeline for N minutes at R events/min.
soak: install
	$(BIN)/scbda soak --minutes $(MINUTES) --rate $(RATE) --report soak-report.json

services-up: install
	$(BIN)/scbda services up

services-down: install
	$(BIN)/scbda services down

clean:
	-$(BIN)/scbda services down
	rm -rf .scbda

## make chaos MINUTES=N SEED=S: the fault-injection lane (docs/chaos.md); a report in chaos-report.json.
SEED ?= 7
chaos: install
	$(BIN)/scbda chaos --minutes $(MINUTES) --seed $(SEED) --rate $(RATE) --report chaos-report.json
