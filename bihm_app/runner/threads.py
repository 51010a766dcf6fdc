"""How many intra-op threads a computing command uses: from the size of the work and the machine's load.

torch's default (one thread per core) is right for one big job on an idle machine and badly wrong
otherwise: a BiHM with small layers does too little per matrix product to pay for waking a thread
pool, and when the cores are already busy (a second training, the dashboard, an evaluation) an
oversubscribed OpenMP pool spins and every job crawls (measured: adult 3 updates/s with 2 threads
beside another job against 54 with 1). :func:`choose_threads` is the one policy, used by every
command that computes (``--threads auto|N``); :func:`configure_threads` applies it.

* work: the multiply-adds of the largest matrix product of one step, ``rows × max_l n_{l-1} n_l``;
  below :data:`SMALL_WORK` one thread (a thread pool costs more than it gives);
* load: the other runnable work on the cores this process may use — the larger of the 1-minute load
  average (less this process's own recent use) and the number of runnable tasks right now (less
  this one); the threads are the cores left free, at least one;
* an explicit ``OMP_NUM_THREADS`` caps ``auto`` (the user or a launcher such as torchrun decided).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

#: Multiply-adds of the largest matrix product below which one thread is used (a 100 × 12 × 180
#: product takes microseconds; waking a second thread costs about as much).
SMALL_WORK = 4_000_000


@dataclass(frozen=True)
class ThreadChoice:
    """The chosen thread count and why (shown by ``--verbose`` paths and the benchmark)."""

    threads: int
    cpus: int
    busy: float
    reason: str


def usable_cpus() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def work_size(sizes: tuple[int, ...] | list[int], rows: int) -> float:
    """Multiply-adds of the largest per-layer matrix product for ``rows`` samples: rows × max n_{l-1} n_l."""
    if len(sizes) < 2:
        return 0.0
    return float(rows) * max(a * b for a, b in zip(sizes[:-1], sizes[1:]))


_own_cpu_mark: tuple[float, float] | None = None


def _own_recent_cpu() -> float:
    """Cores this process used on average since the last call (0 on the first call)."""
    global _own_cpu_mark
    t = os.times()
    now, cpu = time.monotonic(), t.user + t.system
    prev, _own_cpu_mark = _own_cpu_mark, (now, cpu)
    if prev is None or now - prev[0] < 1.0:
        return 0.0
    return max(0.0, (cpu - prev[1]) / (now - prev[0]))


def _runnable_now() -> int | None:
    """Runnable scheduling entities on the machine now, this reader included (Linux /proc/loadavg)."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def machine_busy(own_threads: int = 1) -> float:
    """Cores' worth of work from other processes: max(load average − own recent use, runnable now −
    ``own_threads``) — this process's pool threads may still be spinning when it looks."""
    try:
        load1 = os.getloadavg()[0]
    except (AttributeError, OSError):
        load1 = 0.0
    busy = max(0.0, load1 - _own_recent_cpu())
    now = _runnable_now()
    if now is not None:
        busy = max(busy, float(now - max(1, own_threads)))
    return busy


#: The most intra-op threads ``--threads`` may ask for (far more than any machine's cores; torch's
#: thread pool crashed the process at 10⁶ and 10⁵).
MAX_THREADS = 1024


def check_option(option: str | int | None) -> str:
    """Normalise a ``--threads`` value to ``auto`` or a positive integer's text; raises ConfigError."""
    from bihm_app.errors import ConfigError

    spec = "auto" if option is None else str(option).strip().lower()
    if spec != "auto" and not (spec.isascii() and spec.isdigit() and 1 <= int(spec) <= MAX_THREADS):
        raise ConfigError(f"--threads must be auto or an integer from 1 to {MAX_THREADS}, got {option!r}")
    return spec


def choose_threads(option: str | int | None = "auto", work: float | None = None, busy: float | None = None,
                   cpus: int | None = None) -> ThreadChoice:  # fmt: skip
    """The intra-op thread count for ``--threads option`` (``auto`` or a positive integer).

    ``work``: multiply-adds of the largest matrix product (:func:`work_size`); ``busy`` and ``cpus``
    default to the machine's (:func:`machine_busy`, :func:`usable_cpus`). Raises ValueError on a bad
    option.
    """
    cpus = usable_cpus() if cpus is None else max(1, int(cpus))
    spec = "auto" if option is None else str(option).strip().lower()
    if spec != "auto":
        try:
            n = int(spec)
        except ValueError:
            raise ValueError(f"--threads must be auto or an integer from 1 to {MAX_THREADS}, got {option!r}") from None
        if not 1 <= n <= MAX_THREADS:  # a million threads made torch's pool crash (SIGSEGV)
            raise ValueError(f"--threads must be auto or an integer from 1 to {MAX_THREADS}, got {option!r}")
        return ThreadChoice(n, cpus, math.nan, "asked for")
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    cap = cpus
    if env.isdigit() and int(env) >= 1:
        cap = min(cap, int(env))
    if cap == 1:
        return ThreadChoice(1, cpus, math.nan, "one core" if cpus == 1 else "OMP_NUM_THREADS=1")
    if work is not None and work < SMALL_WORK:
        return ThreadChoice(1, cpus, math.nan, f"small work ({work:.3g} multiply-adds per product)")
    if busy is None:
        import torch

        busy = machine_busy(torch.get_num_threads())
    busy = max(0.0, float(busy))
    free = int(math.floor(cpus - busy + 0.25))  # a core at most a quarter busy counts as free
    n = max(1, min(cap, free))
    return ThreadChoice(n, cpus, busy, f"{cpus} cores, {busy:.1f} busy with other work")


def configure_threads(option: str | int | None = "auto", sizes: tuple[int, ...] | None = None, rows: int = 1000) -> ThreadChoice:
    """Choose (see :func:`choose_threads`) and apply the intra-op thread count; returns the choice.

    ``sizes`` (D, n_1, …, n_L) and ``rows`` (samples per step) give the size of the work; a bad
    option raises ConfigError.
    """
    import torch

    from bihm_app.errors import ConfigError

    try:
        choice = choose_threads(option, work_size(sizes, rows) if sizes is not None else None)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice
