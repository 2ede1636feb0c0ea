# The README's commands. Every target sets itself up on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SERVE_STAMP := $(VENV)/.serve-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: serve test lint model bench clean

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
	@# espeak-ng speaks the speech tests' sentences; without it (no root, no apt) they skip.
	@command -v espeak-ng >/dev/null || (apt-get install -y -qq espeak-ng >/dev/null 2>&1 \
	  || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq espeak-ng >/dev/null 2>&1)) \
	  || echo "espeak-ng could not be installed: the speech tests will be skipped"
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# Two phases, exactly how the shipped model was made: 8 epochs, then resumed to 14.
model: $(DEV_STAMP)  ## train and export the shipped default model (models/motion)
	$(BIN)/python -m models.train --out runs/motion --train-size 10000 --val-size 1000 --epochs 8 --quiet
	$(BIN)/python -m models.train --out runs/motion --train-size 10000 --val-size 1000 --epochs 14 --quiet --resume
	$(BIN)/python -m models.export --checkpoint runs/motion/best.pt --out models/motion --name motion --version 1

bench: $(DEV_STAMP)  ## decode, model and end-to-end benchmarks (needs the ffmpeg binary for one baseline)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) runs build *.egg-info
