#!/usr/bin/env bash
# Does `pip install .` resolve, from wheels only, on platforms other than this one?
#
#   make platforms        (= bash tools/check_platforms.sh)
#
# Two steps per platform, nothing installed:
#  1. uv resolves the project's dependencies for the target (it evaluates environment
#     markers such as platform_machine for the target; pip's --platform only filters wheel
#     tags and evaluates markers for the machine it runs on);
#  2. pip downloads every pinned wheel with that platform's tags (--only-binary :all:), so a
#     missing wheel fails here.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
OUT=${OUT:-runs/platforms}
PY=${PYVER:-3.11}
mkdir -p "$OUT"
"$VENV/bin/pip" install -q uv
# target triple (uv), then the wheel platform tags that platform accepts (pip): macOS 14 on
# Apple silicon (pip adds the older macOS and universal2 tags itself), Linux with glibc 2.28
# (Debian 10, Ubuntu 20.04, RHEL 8 and newer: manylinux_2_17..2_28), Windows x64.
TARGETS=(
  "aarch64-apple-darwin macosx_14_0_arm64"
  "aarch64-unknown-linux-gnu manylinux_2_28_aarch64 manylinux_2_17_aarch64 manylinux2014_aarch64"
  "x86_64-pc-windows-msvc win_amd64"
  "x86_64-unknown-linux-gnu manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64"
)
status=0
for t in "${TARGETS[@]}"; do
  read -r triple tags <<<"$t"
  tag=${tags%% *}
  platform_args=()
  for p in $tags; do platform_args+=(--platform "$p"); done
  req="$OUT/requirements-$tag.txt"
  if ! MACOSX_DEPLOYMENT_TARGET=14.0 "$VENV/bin/uv" pip compile pyproject.toml --python-platform "$triple" \
      --python-version "$PY" --only-binary :all: --no-header --no-annotate -q -o "$req"; then
    echo "$tag: does NOT resolve"; status=1; continue
  fi
  rm -rf "$OUT/wheels-$tag"
  if "$VENV/bin/pip" download -q --no-deps --only-binary :all: "${platform_args[@]}" --python-version "$PY" \
      --implementation cp -d "$OUT/wheels-$tag" -r "$req" 2>"$OUT/pip-$tag.log"; then
    ort=$(grep -E '^onnxruntime' "$req" | tr '\n' ' ')
    echo "$tag: resolves, $(ls "$OUT/wheels-$tag" | wc -l) wheels, ${ort}"
  else
    echo "$tag: a wheel is missing (see $OUT/pip-$tag.log)"; status=1
  fi
done
exit $status
