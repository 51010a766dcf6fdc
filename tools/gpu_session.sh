#!/usr/bin/env bash
# One lent-GPU session, prepared to fit a single device call of under 10 minutes (see
# benchmarks/RESULTS.md and docs/semi-supervised.md for what it produced):
#   1. environment and a CLI sanity check;
#   2. the benchmark suite on CUDA (quiet GPU), JSON after every workload;
#   3. in the background, the experiments that a CPU cannot do in a session: the semi-supervised
#      thesis protocol (label on top / at the bottom × proposal q / mixed, table-4.1 net) and the
#      12-layer MNIST net (thesis12 phase 1), each for TRAIN_S seconds, stopped with Ctrl-C
#      (a clean save), then evaluated on the test split;
#   4. meanwhile the smoke test and the engine's exact tests on CUDA (BIHM_TEST_DEVICE=cuda);
#   5. everything small (metrics, evaluations, pictures — no checkpoints) into $OUT.
# Usage (repository root, torch with CUDA importable): OUT=/tmp/gpu bash tools/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"; mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
TRAIN_S="${TRAIN_S:-280}"; BENCH_S="${BENCH_S:-150}"; BENCH_ONLY="${BENCH_ONLY:-train,eval,logz,gibbs,memory,gemm}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 BIHM_HOME="${BIHM_HOME:-/tmp/bihm-gpu}"
W="$BIHM_HOME/out"; mkdir -p "$W"
T0=$(date +%s); stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
BIHM="python -m bihm_app"

stamp environment
{ nvidia-smi; python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"; $BIHM --version; } 2>&1 | tee "$OUT/env.txt"

stamp benchmark
OMP_NUM_THREADS=4 timeout -k 10 "$BENCH_S" python benchmarks/run.py --device cuda --only "$BENCH_ONLY" \
  --json "$OUT/results-cuda.json" > "$OUT/bench.txt" 2>&1; echo "benchmark exit $?" >> "$OUT/bench.txt"

semi() {  # placement proposal
  local name="gpu-semi-$1-$2"
  timeout -k 30 -s INT "$TRAIN_S" $BIHM train --data bmnist --labels 1000 --label-at "$1" --label-proposal "$2" --gamma 0 \
    --layers 200,170,140,110,80,50,25 -K 10 --batch 100 --labelled-per-batch 50 --lr 1e-3 --epochs 1000 --patience 10 \
    --z-samples 0 --device cuda --seed 0 --name "$name" --quiet > "$W/$name-train.log" 2>&1
  timeout 60 $BIHM classify "$name" -K 100 --device cuda --json --out "$W/$name-confusion.png" > "$W/$name-classify.json" 2> "$W/$name-classify.err"
  timeout 60 $BIHM logz "$name" --samples 1000000 --device cuda --json > "$W/$name-logz.json" 2> "$W/$name-logz.err"
}
deep() {
  local name="mnist-thesis12-s0"
  timeout -k 30 -s INT "$TRAIN_S" $BIHM train --data bmnist --layers paper12 -K 10 --batch 100 --lr 1e-3 --l1 1e-3 --epochs 1000 \
    --patience 10 --z-samples 100000 --device cuda --seed 0 --name "$name" --quiet > "$W/$name-train.log" 2>&1
  timeout 90 $BIHM eval "$name" --split test --samples 1000 --z-samples 1000000 --which best --device cuda --json > "$W/$name-eval.json" 2> "$W/$name-eval.err"
}
stamp "experiments start (${TRAIN_S} s of training each)"
pids=()
for v in "top q" "top mixed" "bottom q" "bottom mixed"; do semi $v & pids+=($!); done
deep & pids+=($!)

stamp "smoke and exact tests on CUDA"
OMP_NUM_THREADS=2 timeout 90 bash benchmarks/gpu_check.sh smoke > "$W/smoke.txt" 2>&1; echo "smoke exit $?" >> "$W/smoke.txt"
BIHM_TEST_DEVICE=cuda OMP_NUM_THREADS=1 timeout 200 python -m pytest -q -p no:cacheprovider -n 6 tests/unit -rf > "$W/tests-cuda.txt" 2>&1
echo "pytest exit $?" >> "$W/tests-cuda.txt"

stamp "waiting for the experiments"
wait "${pids[@]}"
stamp report
python tools/semisup_report.py --runs-dir "$BIHM_HOME/runs" --out "$W"  # reads the <run>-classify/-logz.json written there gpu-semi-top-q gpu-semi-top-mixed gpu-semi-bottom-q gpu-semi-bottom-mixed > "$W/semi-report.log" 2>&1
(cd "$BIHM_HOME" && tar czf "$OUT/experiments.tgz" --exclude='checkpoint.h5' --exclude='best.h5' --exclude='*.tmp*' --exclude='*.lock' out runs) 2>&1 | tail -2
stamp done
ls -la "$OUT"
