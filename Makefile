# Ballast's two commands for a newcomer: `make demo` and `make test`.
# Everything is installed from the repository's own pinned files: the Python
# environment from requirements.lock into .venv, and the control-plane
# binaries from hack/ (Go modules) into a cache outside the repository
# (~/.cache/ballast, or $BALLAST_CACHE), reused when present.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BALLAST := $(VENV)/bin/ballast
PYTEST_ARGS ?=
# Kubernetes minor to build and test against. Empty: the newest supported
# (hack/k8s); `make test K8S_VERSION=1.35` uses hack/k8s-1.35 (the oldest).
K8S_VERSION ?=
ifneq ($(K8S_VERSION),)
export BALLAST_K8S_VERSION := $(K8S_VERSION)
endif

.PHONY: all venv bins test unit integration verify generate lint typecheck demo demo-down bench image clean

all: test

$(VENV)/.stamp: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

venv: $(VENV)/.stamp

# Builds (or reuses from the cache) etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok and helm.
bins: venv
	$(BALLAST) cluster build

test: venv bins verify
	$(PY) -m pytest $(PYTEST_ARGS) tests

unit: venv
	$(PY) -m pytest $(PYTEST_ARGS) tests/unit

integration: venv bins
	$(PY) -m pytest $(PYTEST_ARGS) tests/integration

generate: venv
	$(BALLAST) generate

lint: venv
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/ruff format --check operator tests bench

typecheck: venv
	$(VENV)/bin/mypy

# What `ballast generate` writes into the chart (ballast/api/chart.py).
CHART_GENERATED := charts/ballast/crds charts/ballast/templates/crds charts/ballast/files charts/ballast/values.schema.json charts/ballast/README.md

# Regenerates every generated file and fails if any differs from what is committed.
verify: generate lint typecheck
	git diff --exit-code -- crds $(CHART_GENERATED)
	@test -z "$$(git status --porcelain -- crds $(CHART_GENERATED))" || { git status --porcelain -- crds $(CHART_GENERATED); echo "untracked generated files"; exit 1; }

demo: venv bins
	$(BALLAST) demo --prometheus --keda

demo-down: venv
	$(BALLAST) cluster down --name demo

bench: venv bins
	$(PY) bench/operator_reconcile.py

# The container image as an archive (docker save format: `kind load image-archive`,
# `docker load`), built without a Docker daemon from Debian's packages and
# requirements.lock, cached by its inputs; prints the path. Needs root,
# mmdebstrap and Go (docs/install.md, "The container image").
image: venv
	$(BALLAST) image build

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
