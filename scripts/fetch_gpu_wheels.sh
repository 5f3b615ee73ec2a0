#!/usr/bin/env bash
# Download, HERE (where PyPI is reachable), the wheels the lent GPU machine lacks into .whl/
# (git-ignored through .git/info/exclude), for its Python 3.12 on x86-64. Run once before
# scripts/gpu_check.sh is sent there with `.whl` carried. docs/perf.md, "GPU check".
#
# The machine's image has torch, triton, transformers, accelerate, safetensors, huggingface-hub,
# einops, scipy, scikit-learn, pandas, matplotlib, tensorboard, pytest, pytest-benchmark and
# hypothesis; it lacks diffusers (and diffusers' importlib_metadata) and pycocotools (imported when
# the test suite is collected). Pins: the versions the project is tested with here.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
exclude="$(git rev-parse --git-path info/exclude)"
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
WHEELS=(diffusers==0.42.1 importlib_metadata==10.2.0 pycocotools==2.0.11)
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
ls -l .whl
