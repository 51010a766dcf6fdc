"""Helper process for the SWMR tests (not a test module).

``python -m tests.store._metrics_writer PATH N_UPDATES EVERY HANG``: writes N_UPDATES update rows
(an epoch row every EVERY updates, an event every 3 epochs), sleeping a little between rows,
prints ``ready`` once the file exists and ``done`` at the end; with HANG=1 it then waits
(without closing the file) to be killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bihm_app.store.metrics import MetricsWriter


def main() -> None:
    path, n, every, hang = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
    w = MetricsWriter(path, {"run": "swmr-test", "start_step": 0}, flush_every_s=0.02, flush_rows=50)
    print("ready", flush=True)
    for step in range(1, n + 1):
        w.log_update(step, (step - 1) // every + 1, step * 0.01, -100.0 + step * 0.001)
        if step % every == 0:
            epoch = step // every
            w.log_epoch({"epoch": epoch, "step": step, "time": step * 0.01, "valid_log_ptilde": -90.0 + epoch,
                         "valid_log_ptilde_se": 0.1, "lr": 1e-3})  # fmt: skip
            if epoch % 3 == 0:
                w.log_event(step, step * 0.01, "lr-halved", f"epoch {epoch}: lr → {1e-3 / 2:g}")
        time.sleep(0.001)
    w.flush()
    print("done", flush=True)
    if hang:
        time.sleep(600)
    w.close()


if __name__ == "__main__":
    main()
