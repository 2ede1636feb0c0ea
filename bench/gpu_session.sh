#!/usr/bin/env bash
# Every GPU figure in one run, on a lent GPU machine that has torch, transformers and the CUDA 13
# libraries but not onnxruntime-gpu nor the service's own dependencies. They arrive as files
# under .gpu/ (onnxruntime-gpu's wheel, TensorRT provider removed, xz-compressed and split in
# parts small enough for one transfer each; the service's wheels), copied to /tmp/parts by
# earlier calls on the same warm machine. Writes every table under $OUT (or ./gpu-out).
set -uo pipefail
OUT=${OUT:-gpu-out}; mkdir -p "$OUT" /tmp/parts /tmp/site
cp .gpu/* /tmp/parts/ 2>/dev/null
cd /tmp/parts && cat ort.part.* > /tmp/ort.tar.xz && sha256sum /tmp/ort.tar.xz | cut -d' ' -f1 | diff - <(cut -d' ' -f1 ort.sha256) || { echo "onnxruntime-gpu parts incomplete"; ls -la /tmp/parts; exit 2; }
tar xJf /tmp/ort.tar.xz -C /tmp/site && mkdir -p /tmp/wheels && for t in deps*.tar; do tar xf "$t" -C /tmp/wheels; done
python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/wheels/*.whl 2>&1 | grep -v '^WARNING: Target' ; PYTHONPATH=/tmp/site python3 -c 'import fastapi, onnxruntime' || exit 3
cd - >/dev/null
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
# The CUDA 13 libraries come with torch's nvidia-* wheels: let onnxruntime (and the service
# process, which never imports torch) find them.
NV=$(python3 -c 'import os, nvidia; print(os.path.dirname(list(nvidia.__path__)[0]))')
export LD_LIBRARY_PATH=$(find "$NV/nvidia" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import onnxruntime as o, torch; print("onnxruntime", o.__version__, o.get_available_providers(), "torch", torch.__version__)'
  echo "CTranslate2 needs libcublas.so.12; found: $(find / -name 'libcublas.so.12*' 2>/dev/null | head -1)"; } 2>&1 | tee "$OUT/env.txt"
export WHISPER_MODEL=none OCR_ENABLED=false  # the load part's service: the video models only
if [ "${1:-all}" = hf ]; then  # the converted VideoMAE only
  timeout 300 python3 -m bench.gpu_hf --repeat 10 2>&1 | grep -v -i "warn" | tee "$OUT/hf.txt"; exit
fi
if [ "${1:-all}" = load ]; then  # the service under load only (each shipped model on CUDA)
  timeout 300 python3 -m bench.gpu --skip model decode --seconds 20 2>&1 | tee "$OUT/load.txt"; exit
fi
timeout 120 python3 -m bench.gpu_imagenet --batches 1 8 32 --repeat 20 2>&1 | grep -v Warning | tee "$OUT/imagenet.txt"
timeout 200 python3 -m bench.gpu_hf --repeat 10 2>&1 | tee "$OUT/hf.txt"
timeout 150 python3 -m bench.gpu --batches 1 8 64 --repeat 10 --seconds 20 --clips short 2>&1 | tee "$OUT/motion.txt"
