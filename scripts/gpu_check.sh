#!/usr/bin/env bash
# The one prepared GPU check (docs/perf.md, "GPU check"): on a CUDA machine, from the repository
# root. Installs the carried wheels in .whl/ (scripts/fetch_gpu_wheels.sh) into /tmp/site when
# diffusers is missing, puts this checkout on the path as `lsd` and `lsd_kernels`, runs the AOT
# compile check first (scripts/kernels_aot.py --subset ci: the kernels compiled for A100 and
# H100/H200 without launching them, table in kernels-aot.md), then scripts/gpu_check.py, which
# prints a short table last. Fails when either fails. Arguments go to gpu_check.py
# (--dry-run, --only STEP, --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c "import diffusers" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "gpu_check: diffusers is not installed and no wheels are in .whl/ (run scripts/fetch_gpu_wheels.sh here)" >&2
    [[ " $* " == *" --dry-run "* ]] || exit 2
  fi
fi
if ! "$PY" -c "import lsd, lsd_kernels" 2>/dev/null; then
  # Not installed: the checkout itself, with kernels/ importable under its installed name.
  mkdir -p /tmp/lsd-path && ln -sfn "$PWD/kernels" /tmp/lsd-path/lsd_kernels
  export PYTHONPATH="$PWD:/tmp/lsd-path${PYTHONPATH:+:$PYTHONPATH}"
fi
aot=0
if [[ " $* " != *" --dry-run "* ]]; then
  out="${OUT:-gpu-check}"
  mkdir -p "$out"
  echo "-- kernels-aot (limit 60 s)"
  TRITON_INTERPRET=0 timeout 60 "$PY" scripts/kernels_aot.py --subset ci --json "$out/kernels-aot.json" \
    >"$out/kernels-aot.md" 2>"$out/kernels-aot.log" || aot=$?
  echo "   exit $aot: $(tail -n 1 "$out/kernels-aot.md")"
fi
status=0
"$PY" scripts/gpu_check.py "$@" || status=$?
exit $(( status > aot ? status : aot ))
