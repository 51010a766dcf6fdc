"""The benchmark suite: every workload of the engine against a plain PyTorch implementation.

    python benchmarks/run.py [--device cpu|cuda] [--quick] [--repeats N] [--json OUT] [--threads auto|N] [--only NAME,…]

For each workload the engine and its reference run in the same process on the same data,
interleaved (engine, reference, engine, reference, …), and the table shows the median of the
repeats; ratios measured this way are robust to a loaded machine, absolute rates are context only.

workloads (B = 100 data points, K = 10 samples per point for training):

* ``train-paper12``, ``train-200,200``, ``train-1000,1000``: updates/s of Algorithm 1 (the engine's
  closed-form step, fp32 and, where the hardware has bf16 matrix units, ``--precision bf16``) against
  plain autograd (``autograd_baseline.py``: nn.Linear, BCE, ``backward()``);
* ``eval``: data points/s of log p̃*(x) and log p(x) at K = 1,000 (paper12);
* ``logz``: samples/s of 2 log Z (3.11), one inner sample (paper12);
* ``gibbs``: sweeps/s of Algorithm 2 with 64 chains, K = 100, inner K = 10 (paper12) against the
  engine's sampler before the performance work (``gibbs_reference.py``);
* ``memory``: peak memory of ``evaluate`` at K = 10³, 10⁴, 10⁵ (each in a fresh process): flat if the
  estimator streams;
* ``gemm``: the machine's measured matrix-product peak and the fraction of it the engine's training
  step reaches (its multiply-adds per second over the whole step, not only inside the products);
* ``concurrency``: two trainings at once against the same two one after the other (subprocesses,
  ``--threads auto``), and for contrast both at once with torch's default thread count.

Results print as a table; ``--json OUT`` writes them with the machine's description and load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402

from autograd_baseline import AutogradBiHM  # noqa: E402
from bihm_app.engine.model import PAPER12, BiHM, ModelConfig, make_generator  # noqa: E402

D = 784


# -- timing ----------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: CPU seconds per unit of the last :func:`interleaved` call (process time: on a loaded machine it
#: does not count the time the process waited for a core, so its ratios are steadier than wall time's).
LAST_CPU: dict[str, float] = {}
#: ``--repeats N``: every workload's number of interleaved repeats (default: its own, 2 … 7).
REPEATS: int | None = None


def interleaved(fns: dict, repeats: int, device: torch.device, warmup: int = 1) -> dict[str, float]:
    """``fns``: name -> (callable doing ``units`` units of work, units). Median wall seconds per unit
    (median CPU seconds per unit in :data:`LAST_CPU`)."""
    repeats = REPEATS or repeats
    for fn, _ in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, (fn, units) in fns.items():
            _sync(device)
            t, c = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            times[name].append((time.perf_counter() - t) / units)
            cpu[name].append((time.process_time() - c) / units)
    LAST_CPU.clear()
    LAST_CPU.update({k: statistics.median(v) for k, v in cpu.items()})
    return {k: statistics.median(v) for k, v in times.items()}


def _binary(n: int, d: int, device, seed: int = 0, p: float = 0.13) -> torch.Tensor:
    g = make_generator(seed, device)
    return (torch.rand(n, d, generator=g, device=device) < p).float()


def _has_precision() -> bool:
    from bihm_app.engine.training import TrainConfig

    return "precision" in TrainConfig.__dataclass_fields__


def bf16_matmul_available(device: torch.device) -> bool:
    """bf16 matrix units: a CUDA GPU of compute capability ≥ 8, or a CPU oneDNN reports bf16 for."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def train_macs(sizes: tuple[int, ...], B: int, K: int) -> int:
    """Multiply-adds of the matrix products of one closed-form training step (forward p and q, gradients)."""
    N = B * K
    prods = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    q = B * prods[0] * 2 + N * sum(prods[1:]) * 2  # layer 1 once per point (logits and gradient)
    p = N * sum(prods) * 2  # logits and gradient for every sample
    return q + p + B * prods[0]  # + xᵀW for Σ x·a of the first layer


# -- workloads -------------------------------------------------------------------------------------
def bench_train(layers, device, quick: bool, B: int = 100, K: int = 10) -> dict:
    from bihm_app.engine.training import Trainer, TrainConfig

    x = _binary(B, D, device)
    model = BiHM(ModelConfig(D, layers), make_generator(0)).to(device)
    ref = AutogradBiHM((D, *layers)).to(device).copy_from(model)
    opt = torch.optim.Adam(ref.parameters(), lr=1e-3)

    def ref_step(tuned: bool) -> None:
        opt.zero_grad(set_to_none=True)
        ref.surrogate_loss(x, K, tuned=tuned).backward()
        opt.step()

    big = max(a * b for a, b in zip((D, *layers)[:-1], layers)) >= 500_000
    n = 1 if (quick and big) else (3 if quick else 10)
    engines = {"fp32": Trainer(model, TrainConfig(K=K, batch_size=B), make_generator(1, device))}
    if device.type == "cuda":  # the default replays a CUDA graph; the eager update for comparison
        m_eager = BiHM(ModelConfig(D, layers), make_generator(0)).to(device)
        engines["eager"] = Trainer(m_eager, TrainConfig(K=K, batch_size=B, cuda_graph=False), make_generator(1, device))
    if _has_precision() and bf16_matmul_available(device):
        m16 = BiHM(ModelConfig(D, layers), make_generator(0)).to(device)
        engines["bf16"] = Trainer(m16, TrainConfig(K=K, batch_size=B, precision="bf16"), make_generator(1, device))
    fns = {f"engine-{k}": ((lambda t=t: [t.step(x) for _ in range(n)]), n) for k, t in engines.items()}
    fns["plain"] = (lambda: [ref_step(False) for _ in range(n)], n)
    fns["tuned"] = (lambda: [ref_step(True) for _ in range(n)], n)
    med = interleaved(fns, 3 if quick else 7, device)
    out = {"unit": "updates/s", **{k: 1 / v for k, v in med.items()}}
    out["ratio"] = med["plain"] / med["engine-fp32"]
    out["ratio_cpu"] = LAST_CPU["plain"] / LAST_CPU["engine-fp32"]
    out["ratio_tuned"] = med["tuned"] / med["engine-fp32"]
    if "engine-eager" in med:
        out["ratio_eager"] = med["plain"] / med["engine-eager"]
        out["graph_vs_eager"] = med["engine-eager"] / med["engine-fp32"]
    if "engine-bf16" in med:
        out["ratio_bf16"] = med["plain"] / med["engine-bf16"]
        out["ratio_bf16_cpu"] = LAST_CPU["plain"] / LAST_CPU["engine-bf16"]
    out["engine_gmacs"] = train_macs((D, *layers), B, K) * out["engine-fp32"] / 1e9
    return out


def _with_fp32_products(fns: dict, name: str) -> None:
    """Add ``name + "-fp32prod"``: the same engine call with the exact int8 products off (where they
    are on), to show what they bring."""
    from bihm_app.engine import passes

    if not passes.int8_products_available():
        return
    fn, units = fns[name]

    def without() -> None:
        passes.set_int8_products(False)
        try:
            fn()
        finally:
            passes.set_int8_products(None)

    fns[name + "-fp32prod"] = (without, units)


def _int8_note(med: dict, name: str, ref: str) -> dict:
    if name + "-fp32prod" not in med:
        return {}
    return {"ratio_fp32prod": med[ref] / med[name + "-fp32prod"], "int8_gain": med[name + "-fp32prod"] / med[name]}


def bench_eval(device, quick: bool, K: int = 1000) -> dict:
    from bihm_app.engine.estimators import evaluate

    model = BiHM(ModelConfig(D, PAPER12), make_generator(0)).to(device)
    ref = AutogradBiHM((D, *PAPER12)).to(device).copy_from(model)
    n = 10 if quick else 50
    x = _binary(n, D, device, seed=3)
    g = make_generator(5, device)
    fns = {
        "engine-fp32": (lambda: evaluate(model, [x], K, g), n),
        "plain": (lambda: ref.evaluate(x, K), n),
    }
    _with_fp32_products(fns, "engine-fp32")
    med = interleaved(fns, 3 if quick else 5, device)
    cpu_ratio = LAST_CPU["plain"] / LAST_CPU["engine-fp32"]
    # the two implementations estimate the same quantity (a sanity check, not a test)
    a = evaluate(model, [x], K, g).log_ptilde.mean
    b = float(ref.evaluate(x, K)[0].mean())
    return {"unit": "points/s", **{k: 1 / v for k, v in med.items()}, "ratio": med["plain"] / med["engine-fp32"],
            "ratio_cpu": cpu_ratio, "K": K, "engine_log_ptilde": a, "plain_log_ptilde": b,
            **_int8_note(med, "engine-fp32", "plain")}  # fmt: skip


def bench_logz(device, quick: bool) -> dict:
    from bihm_app.engine.estimators import estimate_log_z2

    model = BiHM(ModelConfig(D, PAPER12), make_generator(0)).to(device)
    ref = AutogradBiHM((D, *PAPER12)).to(device).copy_from(model)
    n = 50_000 if quick else 1_000_000
    g = make_generator(7, device)
    fns = {
        "engine-fp32": (lambda: estimate_log_z2(model, n, g, chunk=10_000), n),
        "plain": (lambda: ref.log_z2(n, chunk=10_000), n),
    }
    _with_fp32_products(fns, "engine-fp32")
    med = interleaved(fns, 3 if quick else 3, device, warmup=0 if not quick else 1)
    cpu_ratio = LAST_CPU["plain"] / LAST_CPU["engine-fp32"]
    z = estimate_log_z2(model, n, g)
    zr = ref.log_z2(n)
    return {"unit": "samples/s", **{k: 1 / v for k, v in med.items()}, "ratio": med["plain"] / med["engine-fp32"],
            "ratio_cpu": cpu_ratio, "samples": n, "engine_log_z2": [z.mean, z.se], "plain_log_z2": list(zr),
            **_int8_note(med, "engine-fp32", "plain")}  # fmt: skip


def bench_gibbs(device, quick: bool, chains: int = 64, K: int = 100, inner_K: int = 10) -> dict:
    import gibbs_reference as ref

    from bihm_app.engine import gibbs

    model = BiHM(ModelConfig(D, PAPER12), make_generator(0)).to(device).eval()
    g = make_generator(11, device)
    start = ref.start_chains(model, chains, g)
    state = gibbs.GibbsState(list(start))
    ref_state = [list(start)]

    def engine_sweep() -> None:
        nonlocal state
        state, _ = gibbs.gibbs_sweep(model, state, g, gibbs.GibbsConfig(K, inner_K=inner_K))

    def ref_sweep() -> None:
        ref_state[0] = ref.gibbs_sweep(model, ref_state[0], K, g, inner_K=inner_K)

    n = 1 if quick else 3
    fns = {
        "engine": (lambda: [engine_sweep() for _ in range(n)], n),
        "before": (lambda: [ref_sweep() for _ in range(n)], n),
    }
    _with_fp32_products(fns, "engine")
    med = interleaved(fns, 2 if quick else 3, device)
    return {"unit": "sweeps/s", **{k: 1 / v for k, v in med.items()}, "ratio": med["before"] / med["engine"],
            "ratio_cpu": LAST_CPU["before"] / LAST_CPU["engine"], "chains": chains, "K": K, "inner_K": inner_K,
            **_int8_note(med, "engine", "before")}  # fmt: skip


def _memory_child(K: int, n_points: int, device: str) -> dict:
    """In a fresh process: peak memory growth of evaluate() at K (RSS high-water mark on CPU)."""
    import resource

    from bihm_app.engine.estimators import evaluate

    dev = torch.device(device)
    model = BiHM(ModelConfig(D, PAPER12), make_generator(0)).to(dev)
    x = _binary(n_points, D, dev)
    evaluate(model, [x[:1]], 10, make_generator(1, dev))  # first-touch allocations of the small case
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.max_memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    evaluate(model, [x], K, make_generator(2, dev))
    dt = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"K": K, "points": n_points, "peak_growth_mb": (peak - base) / 2**20, "seconds": dt}


def bench_memory(device, quick: bool, threads: int) -> dict:
    rows = []
    for K in (1_000, 10_000, 100_000):
        cmd = [sys.executable, str(Path(__file__)), "--_memory", str(K), "--device", device.type, "--threads", str(threads),
               "--_points", "2" if quick else "10"]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
        if res.returncode != 0:
            raise RuntimeError(res.stderr[-2000:])
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    growth = [r["peak_growth_mb"] for r in rows]
    return {"unit": "MB", "rows": rows, "flat": max(growth) <= max(64.0, 1.5 * growth[0])}


def bench_gemm(device, train_results: dict) -> dict:
    """The measured matrix-product peak (best of square and the engine's shapes) in GMAC/s."""

    def rate(m, k, n, dtype) -> float:
        a = torch.randn(m, k, device=device).to(dtype)
        b = torch.randn(k, n, device=device).to(dtype)
        reps = max(3, int(2e9 / (m * k * n)))
        best = math.inf
        for _ in range(3):
            _sync(device)
            t = time.perf_counter()
            for _ in range(reps):
                a @ b
            _sync(device)
            best = min(best, (time.perf_counter() - t) / reps)
        return m * k * n / best / 1e9

    shapes = [(2048, 2048, 2048), (1000, 300, 784), (784, 1000, 300)]
    peak = max(rate(*s, torch.float32) for s in shapes)
    out = {"unit": "GMAC/s", "peak_fp32": peak}
    if bf16_matmul_available(device):
        out["peak_bf16"] = max(rate(*s, torch.bfloat16) for s in shapes)
    tr = train_results.get("train-paper12")
    if tr:
        out["engine_paper12_gmacs"] = tr["engine_gmacs"]
        out["fraction_of_peak"] = tr["engine_gmacs"] / peak
    return out


def _train_worker(layers: tuple[int, ...], dim: int, updates: int, threads: str) -> dict:
    from bihm_app.engine.training import Trainer, TrainConfig
    from bihm_app.runner.threads import configure_threads

    B, K = 100, 10
    choice = configure_threads(threads, (dim, *layers), B * K)
    x = _binary(B, dim, torch.device("cpu"))
    tr = Trainer(BiHM(ModelConfig(dim, layers), make_generator(0)), TrainConfig(K=K, batch_size=B), make_generator(1))
    t = time.perf_counter()
    for _ in range(updates):
        tr.step(x)
    return {"seconds": time.perf_counter() - t, "threads": choice.threads}


def bench_concurrency(quick: bool) -> dict:
    """Two trainings at once vs one after the other (``--threads auto``), and at once with torch's default."""
    cases = {"adult-like 123:100,100": (123, "100,100", 300 if quick else 1500),
             "paper12": (D, "paper12", 30 if quick else 150)}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = {}
    for name, (dim, layers, updates) in cases.items():

        def launch(threads: str):
            cmd = [sys.executable, str(Path(__file__)), "--_train", layers, "--_dim", str(dim), "--_updates", str(updates),
                   "--threads", threads]  # fmt: skip
            return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

        def finish(p) -> dict:
            so, se = p.communicate(timeout=1800)
            if p.returncode != 0:
                raise RuntimeError(se[-2000:])
            return json.loads(so.strip().splitlines()[-1])

        t = time.perf_counter()
        seq = [finish(launch("auto")), finish(launch("auto"))]
        t_seq = time.perf_counter() - t
        t = time.perf_counter()
        ps = [launch("auto"), launch("auto")]
        par = [finish(p) for p in ps]
        t_par = time.perf_counter() - t
        t = time.perf_counter()
        ps = [launch(str(os.cpu_count() or 1)), launch(str(os.cpu_count() or 1))]
        dflt = [finish(p) for p in ps]
        t_dflt = time.perf_counter() - t
        out[name] = {
            "updates_each": updates,
            "sequential_s": t_seq, "concurrent_auto_s": t_par, "concurrent_default_threads_s": t_dflt,
            "threads_auto": [r["threads"] for r in par], "threads_default": [r["threads"] for r in dflt],
            "concurrent_over_sequential": t_par / t_seq, "default_over_sequential": t_dflt / t_seq,
            "step_seconds_sequential": [r["seconds"] for r in seq], "step_seconds_concurrent": [r["seconds"] for r in par],
        }  # fmt: skip
    return out


# -- report ----------------------------------------------------------------------------------------
TARGETS = {"train-paper12": 2.5, "eval": 3.0, "logz": 3.0, "gibbs": 3.0}


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "cpus": os.cpu_count(), "threads": torch.get_num_threads()}  # fmt: skip
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        info["cpu"] = platform.processor()
    try:
        info["loadavg"] = os.getloadavg()
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def print_table(res: dict) -> None:
    print(f"\n{'workload':18} {'unit':10} {'engine':>11} {'reference':>11} {'ratio':>7} {'cpu-time':>8} {'target':>7}   notes")
    for name, r in res.items():
        if name in ("memory", "gemm", "concurrency", "machine", "machine_end"):
            continue
        if "error" in r:
            print(f"{name:18} failed: {r['error']}")
            continue
        refk = "before" if name == "gibbs" else "plain"
        eng = r.get("engine-graph", r.get("engine-fp32", r.get("engine")))
        note = ""
        if "graph_vs_eager" in r:
            note = f"CUDA graph replay; eager engine {r['engine-eager']:.1f}/s = {r['ratio_eager']:.2f}x, graph/eager {r['graph_vs_eager']:.2f}x; "
        if "ratio_bf16" in r:
            note += f"bf16 engine {r['engine-bf16']:.1f}/s = {r['ratio_bf16']:.2f}x (cpu-time {r['ratio_bf16_cpu']:.2f}x); "
        if "ratio_tuned" in r:
            note += f"vs tuned autograd {r['ratio_tuned']:.2f}x"
        if name == "gibbs":
            note = "reference: the engine before this work; "
        if "int8_gain" in r:
            note += f"int8 products {r['int8_gain']:.2f}x the fp32 products (engine without them: {r['ratio_fp32prod']:.2f}x)"
        tgt = TARGETS.get(name)
        print(f"{name:18} {r['unit']:10} {eng:11.2f} {r[refk]:11.2f} {r['ratio']:6.2f}x {r.get('ratio_cpu', math.nan):7.2f}x "
              f"{('≥' + str(tgt)) if tgt else '':>7}   {note}")  # fmt: skip
    if "memory" in res:
        rows = res["memory"]["rows"]
        print("eval peak memory growth: " + ", ".join(f"K={r['K']:,}: {r['peak_growth_mb']:.0f} MB" for r in rows)
              + ("  (flat)" if res["memory"]["flat"] else "  (GROWS with K)"))  # fmt: skip
    if "gemm" in res:
        gm = res["gemm"]
        line = f"GEMM peak {gm['peak_fp32']:.1f} GMAC/s fp32"
        if "peak_bf16" in gm:
            line += f", {gm['peak_bf16']:.1f} bf16"
        if "fraction_of_peak" in gm:
            line += f"; training step (paper12) reaches {gm['engine_paper12_gmacs']:.1f} GMAC/s = {100 * gm['fraction_of_peak']:.0f} % of the fp32 peak"
        print(line)
    for name, c in res.get("concurrency", {}).items():
        print(f"two trainings ({name}, {c['updates_each']} updates each): one after the other {c['sequential_s']:.1f} s, "
              f"at once (auto: {c['threads_auto']} threads) {c['concurrent_auto_s']:.1f} s = {c['concurrent_over_sequential']:.2f}x, "
              f"at once with {c['threads_default'][0]} threads each {c['concurrent_default_threads_s']:.1f} s = {c['default_over_sequential']:.2f}x")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller workloads (a few minutes)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--threads", default="auto", help="intra-op threads: auto (the runner's policy) or N")
    ap.add_argument("--repeats", type=int, help="interleaved repeats of every workload (default: 2-7 by workload; more: steadier medians)")
    ap.add_argument("--only", default="", help="comma-separated workloads (train,eval,logz,gibbs,memory,gemm,concurrency)")
    ap.add_argument("--_memory", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--_points", type=int, default=10, help=argparse.SUPPRESS)
    ap.add_argument("--_train", help=argparse.SUPPRESS)
    ap.add_argument("--_dim", type=int, default=D, help=argparse.SUPPRESS)
    ap.add_argument("--_updates", type=int, default=10, help=argparse.SUPPRESS)
    args = ap.parse_args()
    global REPEATS
    REPEATS = args.repeats

    if args._train:
        from bihm_app.engine.model import parse_layers

        print(json.dumps(_train_worker(parse_layers(args._train), args._dim, args._updates, args.threads)))
        return
    from bihm_app.runner.threads import configure_threads

    choice = configure_threads(args.threads, (D, *PAPER12), 1000)
    if args._memory:
        print(json.dumps(_memory_child(args._memory, args._points, args.device)))
        return
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA GPU")
    only = set(filter(None, args.only.split(",")))
    want = (lambda k: not only or k in only)  # noqa: E731
    res: dict = {"machine": machine()}
    res["machine"]["thread_choice"] = choice.reason
    print(f"torch {torch.__version__} on {res['machine'].get('gpu', res['machine']['cpu'])}, {choice.threads} thread(s) "
          f"({choice.reason}), load {res['machine'].get('loadavg')}, {'quick' if args.quick else 'full'} run", flush=True)  # fmt: skip
    t0 = time.perf_counter()

    def save() -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(res, indent=1, default=str))

    if want("train"):
        for layers in (PAPER12, (200, 200), (1000, 1000)):
            name = "train-paper12" if layers == PAPER12 else "train-" + ",".join(map(str, layers))
            res[name] = bench_train(layers, device, args.quick)
            print(f"  {name}: {res[name]['ratio']:.2f}x", flush=True)
            save()
    for key, bench in (("eval", bench_eval), ("logz", bench_logz), ("gibbs", bench_gibbs)):
        if want(key):
            res[key] = bench(device, args.quick)
            print(f"  {key}: {res[key]['ratio']:.2f}x", flush=True)
            save()
    if want("memory"):
        res["memory"] = bench_memory(device, args.quick, choice.threads)
    if want("gemm"):
        res["gemm"] = bench_gemm(device, res)
    if want("concurrency") and device.type == "cpu":
        res["concurrency"] = bench_concurrency(args.quick)
    res["machine_end"] = {"loadavg": os.getloadavg(), "seconds": time.perf_counter() - t0}
    print_table(res)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1, default=str))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
