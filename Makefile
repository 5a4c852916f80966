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

.PHONY: install hadoop run test test-fast test-date-shift bench soak chaos services-up services-down browser compose-check clean

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

# Hadoop's NameNode and DataNode (hadoop/pom.xml, pinned): Maven resolves them from Maven Central into ~/.m2,
# failing on a checksum mismatch (-C), and hadoop/classpath.txt names them for `scbda services up --hdfs` and the hdfs
# test lane. Without mvn or Maven Central that lane skips (fails under CI=true, like the other missing tools).
HADOOP_CLASSPATH := hadoop/classpath.txt
$(HADOOP_CLASSPATH): hadoop/pom.xml
	@command -v mvn >/dev/null || $(call APT_INSTALL,maven,the hdfs tests will skip)
	@command -v mvn >/dev/null && mvn -q -B -C -f hadoop/pom.xml dependency:build-classpath -Dmdep.outputFile=$(CURDIR)/$@.tmp >/dev/null \
	  && mv $@.tmp $@ \
	  || { rm -f $@.tmp; echo "Hadoop's jars could not be fetched (mvn -f hadoop/pom.xml dependency:build-classpath); the hdfs tests will skip" >&2; \
	       [ "$${CI:-}" != true ]; }

hadoop: $(HADOOP_CLASSPATH)

# Headless Chromium for the browser tests, benchmarks and screenshots.
browser:
	@$(call APT_INSTALL,chromium,the browser tests will skip)

# docker-compose v1 validates docker/docker-compose.yml offline (no engine needed).
compose-check:
	@$(call APT_INSTALL,docker-compose,the compose validation tests will skip)

## make run: embedded services + dagster dev (+ dashboard); Ctrl-C stops everything it started.
## make run HDFS=1: the same with the archive on a real HDFS (`scbda services up --hdfs`: NameNode + DataNode).
## make run CLUSTER=1: the same on a Spark standalone cluster + MongoDB replica set + HDFS (`scbda services up --cluster`;
## `make services-down` stops the cluster).
CLUSTER ?=
HDFS ?=
run: install
ifeq ($(CLUSTER),1)
	$(MAKE) hadoop
	set -a && eval "$$($(BIN)/scbda services up --cluster)" && set +a && $(BIN)/scbda run
else ifeq ($(HDFS),1)
	$(MAKE) hadoop
	set -a && eval "$$($(BIN)/scbda services up --hdfs)" && set +a && $(BIN)/scbda run
else
	$(BIN)/scbda run
endif

## make test: the whole pytest suite against real mongod, redis-server, Spark and HDFS.
test: install hadoop browser compose-check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make test-fast: the inner loop: real mongod and redis-server, no Spark, no browser, no cluster, no slow tests
## (markers: conftest adds `spark` / `browser` by fixture use). `make test` still runs everything.
FAST_MARKERS := not spark and not browser and not cluster and not hdfs and not slow
test-fast: install
	$(BIN)/python -m pytest -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

## make test-date-shift: the same suite with the wall clock a year ahead (no test may depend on today's date).
test-date-shift: install hadoop browser compose-check
	$(BIN)/python -m pytest --shift-clock-days=$(SHIFT_DAYS) $(PYTEST_ARGS)

## make bench: benchmarks (not tests); prints a table and writes bench/report.json.
bench: install hadoop browser
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
