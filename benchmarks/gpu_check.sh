#!/usr/bin/env bash
# GPU check for a lent GPU machine (run on an H100 on 2026-11-26 through tools/gpu_session.sh;
# results in benchmarks/RESULTS.md). Fits in a few minutes on one H100/H200:
#   smoke: every engine path on CUDA (train fp32 and bf16, eval, 2 log Z, Gibbs), each compared
#          with the same computation on the CPU within its standard error;
#   tests: the engine's exact tests (tests/unit) on CUDA: BIHM_TEST_DEVICE=cuda (tests/conftest.py);
#   bench: the benchmark suite on CUDA, JSON into $OUT (or benchmarks/results-cuda.json).
# Usage:  bash benchmarks/gpu_check.sh [all|smoke|tests|bench]   (repository root, venv active)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks}"
PHASE="${1:-all}"
mkdir -p "$OUT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
if [ "$PHASE" = all ] || [ "$PHASE" = smoke ]; then
{ nvidia-smi || true; } | tee "$OUT/gpu-nvidia-smi.txt"
python - <<'PY' 2>&1 | tee "$OUT/gpu-smoke.txt"
import time, torch
from bihm_app.engine.model import PAPER12, BiHM, ModelConfig, make_generator
from bihm_app.engine.training import Trainer, TrainConfig, closed_form_gradients
from bihm_app.engine.estimators import evaluate, estimate_log_z2
from bihm_app.engine import gibbs
assert torch.cuda.is_available(), "torch sees no CUDA GPU"
dev = torch.device("cuda")
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(), "bf16", torch.cuda.is_bf16_supported())
x = (torch.rand(100, 784, generator=make_generator(0)) < 0.13).float()
cpu = BiHM(ModelConfig(784, PAPER12), make_generator(0))
gpu = BiHM(ModelConfig(784, PAPER12), make_generator(0)).to(dev)
# the same samples give the same gradients on both devices (uniforms differ between CPU and CUDA
# generators, so compare the objective's distribution instead of the draws)
o_c, _ = closed_form_gradients(cpu, x, 10, make_generator(1))
o_g, g_g = closed_form_gradients(gpu, x.to(dev), 10, make_generator(1, dev))
print("objective mean cpu %.3f gpu %.3f" % (float(o_c.mean()), float(o_g.mean())))
assert all(torch.isfinite(v).all() for v in g_g.values())
for prec in ("fp32", "bf16"):
    tr = Trainer(BiHM(ModelConfig(784, PAPER12), make_generator(0)).to(dev), TrainConfig(precision=prec), make_generator(1, dev))
    for _ in range(5):
        tr.step(x.to(dev))
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(50):
        assert tr.step(x.to(dev)).finite
    torch.cuda.synchronize()
    print(f"train paper12 {prec}: {50 / (time.perf_counter() - t):.1f} updates/s")
e_c = evaluate(cpu, [x[:20]], 1000, make_generator(2))
e_g = evaluate(gpu, [x[:20].to(dev)], 1000, make_generator(2, dev))
print("eval K=1000 log p~* cpu", e_c.log_ptilde, "gpu", e_g.log_ptilde)
assert abs(e_c.log_ptilde.mean - e_g.log_ptilde.mean) < 5 * (e_c.log_ptilde.se + e_g.log_ptilde.se) + 1.0
z_c, z_g = estimate_log_z2(cpu, 200_000, make_generator(3)), estimate_log_z2(gpu, 200_000, make_generator(3, dev))
print("2 log Z cpu", z_c, "gpu", z_g)
assert abs(z_c.mean - z_g.mean) < 5 * (z_c.se + z_g.se) + 0.05
res = gibbs.run_gibbs(gpu, 64, 2, make_generator(4, dev), gibbs.GibbsConfig(100, inner_K=10))
print("gibbs ok", tuple(res.x.shape))
PY
fi
if [ "$PHASE" = all ] || [ "$PHASE" = tests ]; then
  BIHM_TEST_DEVICE=cuda python -m pytest -q -p no:cacheprovider tests/unit -rf 2>&1 | tee "$OUT/gpu-tests.txt"
fi
if [ "$PHASE" = all ] || [ "$PHASE" = bench ]; then
  python benchmarks/run.py --device cuda --json "$OUT/results-cuda.json" 2>&1 | tee "$OUT/gpu-bench.txt"
fi
echo "GPU check ($PHASE) done: $OUT"
