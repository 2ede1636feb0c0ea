# syntax=docker/dockerfile:1
# The inference service on a CUDA 13 + cuDNN 9 runtime: what onnxruntime-gpu 1.31's CUDA
# execution provider loads. On a host without a GPU the service falls back to the CPU EP.
#
#   docker build -t motion-serve .
#   docker run --gpus all -p 8000:8000 motion-serve
ARG BASE_IMAGE=nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04

# ---- build: a virtual environment with the package and the default model as package data
FROM ${BASE_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Ubuntu 24.04's Python is 3.12 (the package needs >= 3.11); venv because the system
# Python is externally managed (PEP 668).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Only what `pip install .` needs (see .dockerignore): service/, models/ (with models/motion).
COPY pyproject.toml README.md ./
COPY service ./service
COPY models ./models
# Refuse to build an image without its default model rather than ship one that cannot start.
RUN test -f models/motion/model.onnx -a -f models/motion/model.json \
 && pip install . \
 && python -c "import importlib.resources as r; assert (r.files('models') / 'motion' / 'model.onnx').is_file()"

# ---- runtime: no compiler, no pip cache, no sources; a non-root user
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /home/app app \
 && mkdir -p /models /tmp/uploads && chown app:app /models /tmp/uploads
COPY --from=build /opt/venv /opt/venv
# A copy of the shipped model repository (every model directory of the installed models
# package: motion, ...) at /models: a named volume mounted on /models starts as a copy of
# this folder, so MODEL_REPOSITORY=/models serves them out of the box and other model
# directories can be added beside them (docker-compose.yml).
RUN /opt/venv/bin/python -c "import importlib.resources as r, shutil; \
[shutil.copytree(d, '/models/' + d.name, ignore=shutil.ignore_patterns('__*')) \
 for d in r.files('models').iterdir() if (d / 'model.json').is_file()]" \
 && chown -R app:app /models
# Settings are environment variables (service/settings.py); these are the container's
# defaults, every one overridable with `docker run -e` or compose's `environment:`.
# MODEL_REPOSITORY is left unset: the repository installed as package data is served.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    TMP_DIR=/tmp/uploads \
    EXECUTION_PROVIDER=auto \
    HWACCEL=none \
    LOG_LEVEL=info \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video
# (video: the NVIDIA runtime mounts the NVDEC library only when asked; HWACCEL=cuda needs it.)
USER app
WORKDIR /home/app
EXPOSE 8000
# python, not curl: the runtime image carries no curl. start-period covers model load and
# warm-up (cuDNN algorithm search can take a while on first start).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/readyz\", timeout=4).status == 200 else 1)"]
# Exec form: python is PID 1 and gets SIGTERM, so the service drains (service/__main__.py).
CMD ["python", "-m", "service"]
