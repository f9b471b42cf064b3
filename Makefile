# Two commands do all set-up: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
STAMP := $(VENV)/.installed-$(shell cat $(LOCK) pyproject.toml | cksum | cut -d' ' -f1)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PORT ?= 8501

.PHONY: run test install lock lint browser bench clean

# Installs exactly the lock (every package pinned, transitive ones included), then this package
# in editable mode for the `inceptionism` console script (same commands as python -m analysis).
$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r $(LOCK) 2>&1 | grep -v "is ignored: it is neither" || true
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | grep -v "is ignored: it is neither" || true
	@$(BIN)/python -c "import torch, torchvision, streamlit, lucent, efficientnet_lite_pytorch, ray, cv2, pyarrow, pydantic"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# Refresh the lock from requirements.txt and requirements-dev.txt in a fresh virtual environment.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt 2>&1 | grep -v "is ignored: it is neither" || true
	{ echo "# Every package, exactly: made by 'make lock' from requirements.txt and requirements-dev.txt."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable --all | grep -vE "^(pip|setuptools|wheel)=="; } > $(LOCK)
	rm -rf .lock-venv

lint: install
	$(BIN)/ruff check .

run: install
	$(BIN)/streamlit run dashboard/app.py --server.port $(PORT)

# The real-browser test needs Debian's chromium; `playwright install` cannot download here.
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

test: install browser lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m pip install --quiet --no-deps -r bench/requirements.txt 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .lock-venv .pytest_cache
