# netsec.ipsec — the single entry point for development, tests, CI, the demo and benchmarks.
#
#   make demo    boot the lab and show IPsec working (ESP on the wire)
#   make test    unit tests, ansible-test sanity, ansible-lint, kernel and lab tests
#   make bench   benchmarks in the lab (ratios against baselines run side by side)
#   make bench-controller  the controller benchmark alone (250 / 1000 / 5000 simulated members, no lab)
#
# Everything lands under build/ (git-ignored): the virtualenv, the ansible_collections path
# ansible-test needs, lab output, benchmark results.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD := $(ROOT)/build
VENV := $(BUILD)/venv
VENV_STAMP := $(VENV)/.installed
BIN := $(VENV)/bin
COLLECTIONS := $(BUILD)/collections
COLLECTION_DIR := $(COLLECTIONS)/ansible_collections/netsec/ipsec
# The built collection artefact (make lint).
DIST := $(BUILD)/dist
SANITY_PYTHON := 3.12

# Debian/Ubuntu packages the lab and the kernel tests need.
APT_PACKAGES := user-mode-linux kmod iproute2 systemd sudo tcpdump iputils-ping openssh-server bc procps util-linux git make gcc libc6-dev \
	python3-venv python3-apt

export PYTHONPATH := $(COLLECTIONS)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
# Tools run from the venv find their siblings (ansible-config, ansible-playbook) on PATH.
WITH_VENV := PATH="$(BIN):$$PATH"

.PHONY: help deps venv collection unit netns sanity lint labtool lab test demo bench bench-controller clean changelog-lint

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

## deps: install the system packages the lab needs (apt; root), when any is missing.
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "deps: missing packages: $$missing — run: sudo apt-get install $$missing" >&2; exit 1; fi; \
	  echo "deps: installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## venv: the project virtualenv with pinned tools (needs a Python >= 3.12).
venv: $(VENV_STAMP) collection

$(VENV_STAMP): requirements-dev.txt tools/find-python
	@python=$$($(ROOT)/tools/find-python) && echo "venv: using $$python" && \
	  rm -rf $(VENV) && "$$python" -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $@

## collection: build/collections/ansible_collections/netsec/ipsec -> the checkout.
collection:
	@mkdir -p $(dir $(COLLECTION_DIR))
	@ln -sfn ../../../.. $(COLLECTION_DIR)

unit: venv
	cd $(ROOT) && $(WITH_VENV) $(BIN)/pytest -q -p no:cacheprovider -n 2 tests/unit

# Policies on the host kernel, in throwaway network namespaces (needs root).
netns: venv
	cd $(ROOT) && $(WITH_VENV) $(BIN)/pytest -q -p no:cacheprovider tests/netns

sanity: venv
	@$(ROOT)/tools/ansible-test-bootstrap
	cd "$$($(ROOT)/tools/sanity-tree)" && $(WITH_VENV) $(BIN)/ansible-test sanity --venv --python $(SANITY_PYTHON) --color no
	@# Modules run on targets with older Pythons: compile and import there too.
	versions=$$($(ROOT)/tools/target-pythons) && cd $(BUILD)/sanity/ansible_collections/netsec/ipsec && \
	  for version in $$versions; do \
	    PATH="$(BUILD)/pythons:$(BIN):$$PATH" $(BIN)/ansible-test sanity --venv --python $$version --test compile --test import --color no; \
	  done

# ansible-lint, the changelog fragments, the collection docs (every plugin's documentation and
# docs/docsite, with the options community collections use, rstcheck included), then the built
# artefact: only what users install, and galaxy-importer (Galaxy's upload checks) without
# ERROR or WARNING. All offline.
lint: venv
	cd $(ROOT) && $(WITH_VENV) $(BIN)/ansible-lint --profile production --offline
	cd $(ROOT) && $(WITH_VENV) $(BIN)/antsibull-changelog lint
	cd $(COLLECTION_DIR) && $(WITH_VENV) $(BIN)/antsibull-docs lint-collection-docs --plugin-docs \
	  --validate-collection-refs all --check-extra-docs-refs .
	cd $(ROOT) && $(WITH_VENV) $(BIN)/python tools/check-artefact $(DIST)

# Tests of the lab tool itself (they boot labs from the host).
labtool: venv deps
	cd $(ROOT) && $(WITH_VENV) $(BIN)/pytest -q -p no:cacheprovider tests/labtool

# Every lab scenario in tests/lab/scenarios, LAB_JOBS at a time. A lab is one UML guest with
# one CPU, and it keeps about 0.8 of a host core busy (its guest waits on timers and packets
# the rest of the time): on two cores, three labs at once keep both busy where two left a
# fifth idle.
LAB_JOBS ?= 3
lab: venv deps
	cd $(ROOT) && $(WITH_VENV) lab/suite -j $(LAB_JOBS) tests/lab/scenarios

## test: everything CI runs, in order; exits non-zero on any failure.
# Each step's wall time is printed as it passes (CI keeps a full run under 45 minutes).
test: deps venv
	@for step in unit sanity lint netns labtool lab; do \
	  started=$$(date +%s); \
	  $(MAKE) $$step; \
	  echo "test: $$step passed in $$(( $$(date +%s) - started )) s"; \
	done

demo: deps venv
	cd $(ROOT) && $(WITH_VENV) lab/demo

bench: deps venv
	cd $(ROOT) && $(WITH_VENV) BENCH_OUT=$(BUILD)/bench bench/run

# The mesh role at 250 / 1000 / 5000 members with the nodes simulated where Ansible would
# reach them (bench/bench_controller.py); part of make bench, and runnable alone: no lab.
bench-controller: venv
	cd $(ROOT) && $(WITH_VENV) BENCH_OUT=$(BUILD)/bench bench/run --controller-only

clean:
	rm -rf $(BUILD) tests/output
