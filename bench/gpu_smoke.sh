#!/usr/bin/env bash
# GPU smoke test: train dot and nn for one fold on CUDA and print their throughput (a few minutes).
# Usage: bash bench/gpu_smoke.sh   (DATASET=ml-1m to try a larger set; needs a CUDA device)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DATASET=${DATASET:-ml-100k}
OUT=${OUT:-output/gpu-smoke}
$PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this smoke test needs a GPU')"
$PY -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
make data competition folds DATASET="$DATASET" OUT="$OUT" PYTHON="$PY"
SPLIT=$($PY -c "from cfblend.data import get_spec; print(get_spec('$DATASET').default_split)" 2>/dev/null || echo u1)
for model in dot nn; do
  $PY bench/scale.py --competition "input/$DATASET-$SPLIT" --folds "$OUT/folds.csv" --model "$model" \
    --set "device=cuda"
done
