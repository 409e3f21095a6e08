#!/usr/bin/env bash
# Run on the lent GPU machine (see README "GPU checks"): CUDA tests and GPU benchmarks.
# Its python3 has torch/CUDA; wheels it lacks (POT) travel in .whl/.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi -L; python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))"
python3 -m pytest -q -p no:cacheprovider "${@:-tests/aligncore}" 2>&1 | tee "$OUT/pytest.log" | tail -25
python3 benchmarks/ot_sinkhorn.py --repeats 5 2>&1 | tee "$OUT/ot_sinkhorn.log"
cp benchmarks/results/*_cuda.json "$OUT/" 2>/dev/null
exit 0
