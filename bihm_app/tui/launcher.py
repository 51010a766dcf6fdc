"""Start, resume and stop training runs as child processes of the dashboard.

A run is always a separate ``python -m bihm_app train`` process in its own session, so it keeps
training when the dashboard closes and a crash in either never takes the other down. The
dashboard talks to a run only through its folder (status.json, metrics-<n>.h5) and signals.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bihm_app.errors import BihmError, ConfigError, RunError
from bihm_app.runner.formats import ended
from bihm_app.runner.naming import default_run_name
from bihm_app.store.runs import RunFolder, check_run_name, open_run

#: Exit codes of a training stopped by a signal: `bihm train` saves and exits 130 on SIGINT, 143 on
#: SIGTERM; killed by the signal itself while Python was still starting up (no handler yet).
STOPPED_CODES = (130, 143, -signal.SIGINT, -signal.SIGTERM)

#: Validation settings that keep an epoch's evaluation short (the new-run form's "quick" box).
QUICK_VALIDATION = ("--valid-max", "1000", "--z-samples", "10000")


@dataclass
class NewRunSpec:
    """What the new-run form asks for; :meth:`argv` turns it into a ``bihm train`` command line."""

    data: str = "bmnist"
    layers: str = "200,200"
    K: int = 10
    batch: int = 100
    lr: float = 1e-3
    epochs: int = 100
    device: str = "auto"
    precision: str = "fp32"  # matrix products in fp32 or bf16 (``bihm train --precision``)
    name: str = ""
    quick: bool = True
    labels: int = 0  # semi-supervised (chapter 4): labelled training points; 0 = unsupervised
    gamma: float = 0.0
    label_at: str = "top"
    label_proposal: str = "q"

    def field_problem(self, field: str) -> str | None:
        """Why the value of one field cannot start a run (the rules of ``bihm train``), or None."""
        from bihm_app.runner.configs import layer_sizes, train_config
        from bihm_app.runner.preflight import data_problem, name_problem

        try:
            if field == "data":
                return data_problem(self.data)
            if field == "name":
                return name_problem(self.name.strip()) if self.name.strip() else None
            if field == "layers":
                layer_sizes(self.layers.replace(" ", ""))
            elif field in TRAIN_FIELDS:
                train_config(**{TRAIN_FIELDS[field]: getattr(self, field)})
            elif field == "labels" and self.labels < 0:
                return f"must be 0 (unsupervised) or a positive number, got {self.labels}"
            elif field == "gamma" and not -1.0 <= self.gamma <= 1.0:
                return f"γ must be in [-1, 1], got {self.gamma:g}"
            elif field == "precision" and self.labels and self.precision != "fp32":
                return "fp32 only with labelled points"
        except ConfigError as exc:
            return str(exc)
        return None

    def problems(self) -> dict[str, str]:
        """Every field's problem, in form order (empty when the spec can start a run)."""
        fields = ("name", "data", "layers", *TRAIN_FIELDS, "labels") + (("gamma", "precision") if self.labels else ())
        return {f: p for f in fields if (p := self.field_problem(f))}

    def validate(self) -> None:
        """Raise ConfigError with one line for the first bad field."""
        for field, problem in self.problems().items():
            raise ConfigError(problem if field in ("name", "data") else f"{field}: {problem}")

    def run_name(self, root: Path | None = None) -> str:
        return self.name.strip() or default_run_name(self.data, self.layers, root)

    def argv(self, root: Path, name: str) -> list[str]:
        args = [
            sys.executable, "-m", "bihm_app", "train", "--data", self.data, "--layers", self.layers.replace(" ", ""),
            "-K", str(self.K), "--batch", str(self.batch), "--lr", repr(float(self.lr)), "--epochs", str(self.epochs),
            "--device", self.device, "--precision", self.precision, "--name", name, "--runs-dir", str(root), "--quiet",
        ]  # fmt: skip
        if self.quick:
            args += list(QUICK_VALIDATION)
        if self.labels:
            args += ["--labels", str(self.labels), "--gamma", repr(float(self.gamma)), "--label-at", self.label_at,
                     "--label-proposal", self.label_proposal]  # fmt: skip
        return args


#: Form fields checked by the engine's TrainConfig: field -> its TrainConfig name.
TRAIN_FIELDS = {"K": "K", "batch": "batch_size", "lr": "lr", "epochs": "epochs"}


def resume_argv(root: Path, name: str) -> list[str]:
    return [sys.executable, "-m", "bihm_app", "train", "--resume", name, "--runs-dir", str(root), "--quiet"]


def launch_log_path(root: Path, name: str) -> Path:
    """Where a launched child's stdout/stderr go (a hidden folder, so `runs list` skips it).

    Only a valid run name gets a path: a name with '/', '..', spaces or control characters is a
    RunError, so no log can ever be written outside ``.launch/``."""
    check_run_name(name)
    return Path(root) / ".launch" / f"{name}.log"


def last_log_line(root: Path, name: str) -> str:
    """The last non-empty line of a launched process's log (its error, for a failed start), or a
    note where that log says nothing."""
    from bihm_app.errors import BihmError
    from bihm_app.runner.summaries import tail_lines

    try:
        path = launch_log_path(root, name)
    except BihmError:
        return "(no log)"
    lines = [ln.strip() for ln in tail_lines(path, 20) if ln.strip()]
    return lines[-1] if lines else f"(nothing in {path})"


def start_note(root: Path, name: str, exit: tuple[int, str] | None) -> str:
    """What the view of a run launched just now says before its folder exists: how its process
    ended (code and last log line), or that it is starting, with the latest line of its log."""
    if exit is not None and exit[0] in STOPPED_CODES:
        how = signal.Signals(-exit[0]).name if exit[0] < 0 else f"exit code {exit[0]}"
        return f"{name}: stopped ({how}) before the run started"
    if exit is not None:
        return f"{name}: the training process {ended(exit[0])} before the run started:\n{exit[1]}"
    from bihm_app.runner.summaries import tail_lines

    lines = [ln.strip() for ln in tail_lines(launch_log_path(root, name), 5) if ln.strip()]
    return f"{name}: waiting for the run to start …" + (f"\n{lines[-1]}" if lines else "")


def spawn(argv: list[str], log_path: Path) -> subprocess.Popen:
    """Start ``argv`` in a new session (it outlives the dashboard), output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        try:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        except OSError as exc:
            raise RunError(f"cannot start {argv[0]}: {exc}") from None


def launch_new(root: Path, spec: NewRunSpec) -> tuple[str, subprocess.Popen]:
    """Validate the form with the checks of ``bihm train`` (name, data, existing run), then start
    training; returns (run name, process). Nothing is written before the checks pass."""
    from bihm_app.runner.preflight import check_new_run

    spec.validate()
    name = spec.run_name(root)
    check_new_run(Path(root), name, spec.data)
    return name, spawn(spec.argv(Path(root), name), launch_log_path(root, name))


def launch_resume(root: Path, name: str) -> subprocess.Popen:
    """Resume ``name`` from its latest checkpoint; refused, with the reason, when it is held by a
    live trainer, still running, already finished or has no readable checkpoint."""
    from bihm_app.runner.preflight import check_resume

    check_resume(Path(root), name)
    return spawn(resume_argv(Path(root), name), launch_log_path(root, name))


def stop_child(name: str, proc: subprocess.Popen) -> int:
    """Ask a training process launched by the dashboard to stop (SIGINT), wherever it is: still
    importing or loading data (no run folder yet), building the model, or training. Returns its pid;
    a process that has already exited is not signalled (its pid may belong to another by now)."""
    proc.send_signal(signal.SIGINT)  # polls first: never signals a process already collected
    if proc.returncode is not None:
        raise RunError(f"run {name}: its process {proc.pid} has already exited")
    return proc.pid


def stop_run(run: RunFolder) -> int:
    """Ask a running run, or one still starting (``created``: its process holds the run lock while
    it builds the model), to stop (SIGINT: it saves a checkpoint, if it has one, and exits);
    returns its pid. A run whose process has gone reads as ``crashed`` and is refused."""
    status = run.read_status()
    if status.get("state") not in ("running", "created"):
        raise RunError(f"run {run.name} is not running (state: {status.get('state', 'unknown')})")
    pid, host = status.get("pid"), status.get("host")
    if host not in (None, socket.gethostname()):
        raise RunError(f"run {run.name} runs on host {host}; stop it there")
    if not isinstance(pid, int) or pid <= 0:
        raise RunError(f"run {run.name}: status.json has no process id")
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        raise RunError(f"run {run.name}: process {pid} is gone") from None
    except PermissionError:
        raise RunError(f"run {run.name}: not allowed to signal process {pid}") from None
    return pid


def stop(root: Path, name: str, proc: subprocess.Popen | None) -> str:
    """SIGINT to run ``name``'s trainer: ``proc``, the live process the dashboard launched for it
    (it may still be importing or loading the data, before its folder exists), else the run's live
    lock holder. Returns the line that says so."""
    # the state before the signal: a trainer that exits at once leaves "running" for a dead pid
    if proc is not None and proc.poll() is None:
        try:  # training, or still starting (no folder yet, or "created")
            state = open_run(name, root).read_status().get("state")
        except (BihmError, OSError):
            state = "created"
        pid = stop_child(name, proc)
    else:
        run = open_run(name, root)
        state = run.read_status().get("state")
        pid = stop_run(run)
    then = "it saves a checkpoint first" if state == "running" else "it is still starting: nothing is saved"
    return f"asked run {name} to stop (SIGINT to pid {pid}); {then}"


def exit_report(root: Path, name: str, rc: int) -> tuple[str, bool]:
    """(what to say, whether the run view must show the exit) when the process launched for run
    ``name`` ended with ``rc``: finished, stopped (130/143, with or without a checkpoint), stopped
    before its folder existed, or failed (its log's last line)."""
    folder = Path(root) / name
    started = folder.is_dir()
    if rc == 0 and started:
        return f"run {name} finished", False
    if rc in STOPPED_CODES and started:
        saved = any((folder / f).exists() for f in ("checkpoint.h5", "best.h5"))
        return (f"run {name} stopped (checkpoint saved)" if saved else f"run {name} stopped before its first save"), False
    if rc in STOPPED_CODES:
        return f"run {name} stopped before it started", True
    return f"run {name} {ended(rc)}: {last_log_line(root, name)}", True
