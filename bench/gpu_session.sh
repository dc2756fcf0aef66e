#!/usr/bin/env bash
# Everything a session lent a GPU machine should measure, as one script within its 15 minutes of device time:
# the CUDA tests, bench/gpu_throughput.py (every case it reaches in its time limit), the conv forms side
# by side, eager and replayed from the trainer's CUDA graph (bench/conv_forms.py: is "grouped", the CUDA
# default, the faster one there?), then the graphed trainer step (train.cuda_graphs) of every case at small S
# (bench/gpu_throughput.py --cuda-graphs). Both graph runs come after the main figures: a failed capture can
# leave the device unusable for the rest of its process.
#
#     bash bench/gpu_session.sh OUT_DIR        # from the repository root on the GPU machine
#
# Needs python3 with a CUDA build of torch, numpy, scipy, scikit-learn, numba, pyarrow and pyyaml (no Ray,
# no DuckDB, no pydantic, no network); pytest only for the tests (skipped with a note when absent).
set -u
OUT=${1:-bench/out}
mkdir -p "$OUT"
export PYTHONPATH=. ORTHOSWEEP_CACHE="${ORTHOSWEEP_CACHE:-/tmp/orthosweep-cache}"
# eight files in all under OUT (the device tool brings back at most 8): nvidia-smi goes with the tests' log
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/cuda_tests.txt"
if python3 -c "import pytest" 2>/dev/null; then
    timeout 150 python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_cuda_paths.py 2>&1 | tee -a "$OUT/cuda_tests.txt"
else
    echo "pytest not installed: CUDA tests not run" | tee -a "$OUT/cuda_tests.txt"
fi
# the targets of issue 15 are restarts per GPU-hour at the best block size: S = 64 in tf32 and bf16, on the
# subset and on the full split (the first full-split case of a dataset builds its node cache, outside the
# timing); S = 1 and 16 come from the conv-form and graph runs below
timeout 270 python3 bench/gpu_throughput.py --seeds 64 --precisions tf32,bf16 --steps 10 --time-limit 210 \
    --json "$OUT/gpu_throughput.json" --figures "$OUT/step_figures.json" 2>&1 | tee "$OUT/gpu_throughput.txt"
timeout 100 python3 bench/conv_forms.py --cases conv_dsprites --seeds 1,16,64 --precisions fp32,bf16 --rounds 2 --cuda-graphs \
    --json "$OUT/conv_forms.json" 2>&1 | tee "$OUT/conv_forms.txt"
timeout 60 python3 bench/gpu_throughput.py --cuda-graphs --data subset --precisions fp32 --seeds 1,16 \
    --steps 10 --time-limit 30 --figures none --json "$OUT/gpu_graphs.json" 2>&1 | tee "$OUT/gpu_graphs.txt"
