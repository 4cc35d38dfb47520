# oddwatch: `make demo` runs the main job, `make test` runs the whole test suite.
# Both set up what they need first: Debian packages (mosquitto, influxdb), the .venv and
# the Python packages. torch is installed first by deploy/install-torch.sh: a CPU build by
# default (from the configured index when it serves one, else PyTorch's CPU wheel index, so no
# multi-GB CUDA build is pulled), a CUDA build with `make TORCH=cuda demo`.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH ?= cpu
TORCH_VERSION := 2.13.0
STAMP := $(VENV)/.installed-$(TORCH)
APT_PACKAGES := mosquitto mosquitto-clients influxdb

.PHONY: demo test lint typecheck system-deps venv clean bench

demo: system-deps $(STAMP)
	$(VENV)/bin/oddwatch demo

test: system-deps $(STAMP)
	$(PY) -m ruff check oddwatch flows detectors simulators tests scripts deploy
	$(PY) -m mypy
	$(PY) -m pytest -q -ra

lint: $(STAMP)
	$(PY) -m ruff check oddwatch flows detectors simulators tests scripts deploy

typecheck: $(STAMP)
	$(PY) -m mypy

# BENCH_DATA: the benchmark data folder (hdfs/HDFS_dev.log) for the log benchmarks; QUICK=1: ~2 min.
bench: system-deps $(STAMP)
	$(PY) scripts/bench.py $(if $(QUICK),--quick) $(if $(BENCH_DATA),--data $(BENCH_DATA))

venv: $(STAMP)

$(STAMP): pyproject.toml deploy/install-torch.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PY=$(PY) TORCH_VERSION=$(TORCH_VERSION) sh deploy/install-torch.sh $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || missing="$$missing mosquitto"; \
	command -v mosquitto_pub >/dev/null 2>&1 || missing="$$missing mosquitto-clients"; \
	command -v influxd >/dev/null 2>&1 || test -x /usr/bin/influxd || missing="$$missing influxdb"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  else \
	    echo "missing:$$missing. Run: sudo apt-get install -y $(APT_PACKAGES)"; exit 1; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) .state out
