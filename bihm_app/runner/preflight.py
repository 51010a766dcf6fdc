"""Checks before a training run is started or resumed, shared by ``bihm train`` and the dashboard.

Both front-ends call the same functions, so a run the dashboard would launch is exactly a run
``bihm train`` accepts, and each refusal is one line that says why — before any process starts or
any file is written (the dashboard's launch log included). Cheap: no torch, no data loading.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bihm_app.errors import BihmError, ConfigError, RunError
from bihm_app.store.runs import RunFolder, open_run, run_name_error

__all__ = ["name_problem", "data_problem", "check_new_run", "UsableCheckpoint", "usable_checkpoint",
           "resume_problem", "check_resume", "ActionChecks"]  # fmt: skip


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a new run ("run name '../x' contains …"), or None."""
    return run_name_error(name)


def data_problem(data: str) -> str | None:
    """Why data set ``data`` cannot be trained on yet (not downloaded, unknown, missing), or None."""
    from bihm_app.data.registry import missing_reason

    if not data:
        return "pick a data set"
    try:
        return missing_reason(data)
    except BihmError as exc:
        return str(exc)


def check_new_run(root: Path, name: str | None, data: str) -> None:
    """ConfigError/RunError with one line unless a new run named ``name`` (None: a default name)
    can be started on ``data`` under ``root``."""
    if name is not None:
        problem = name_problem(name)
        if problem:
            raise ConfigError(problem)
        if os.path.lexists(Path(root) / name):
            raise RunError(f"run {name!r} already exists under {root} (pick another name, or resume it)")
    problem = data_problem(data)
    if problem:
        raise ConfigError(problem)


@dataclass(frozen=True)
class UsableCheckpoint:
    """The checkpoint of a run that an action will read, found before acting.

    ``path`` is None when no checkpoint is readable (``problem`` says why); ``warning`` is set when
    the preferred file was damaged or missing and the other one is used instead."""

    path: Path | None
    meta: dict = field(default_factory=dict)
    warning: str | None = None
    problem: str | None = None
    none_saved: bool = False  # neither file exists: a run before its first save, not a damaged one

    def refusal(self, name: str, doing: str = "draw") -> str | None:
        """Why pictures (samples, inpainting, layers) cannot be made of run ``name``, or None;
        ``doing`` names the action ("classify with": the classify view)."""
        if self.path is not None:
            return None
        if self.none_saved:
            return f"run {name} has no checkpoint yet: nothing to {doing} until its first save"
        return f"run {name} is corrupt, no readable checkpoint: {self.problem}"


def usable_checkpoint(run: RunFolder, prefer: str = "best") -> UsableCheckpoint:
    """The first readable of ``best.h5``/``checkpoint.h5`` (``prefer="best"``: pictures, the order
    of ``bihm sample``) or ``checkpoint.h5``/``best.h5`` (``"latest"``: what a resume continues
    from, the order of ``bihm train --resume``). Only the meta is read (its seal is checked)."""
    from bihm_app.store.checkpoint import read_meta

    order = [run.best_path, run.checkpoint_path] if prefer == "best" else [run.checkpoint_path, run.best_path]
    problems: list[str] = []
    chosen: tuple[Path, dict] | None = None
    for path in order:  # every file is checked: a damaged one is worth a warning even when unused
        if not os.path.lexists(path):
            if prefer == "latest" and path == run.checkpoint_path:
                problems.append(f"{path.name} is missing")
            continue
        try:
            meta = read_meta(path, within=run.path)
        except BihmError as exc:
            problems.append(f"{path.name} is damaged ({_short(exc, path)})")
            continue
        if chosen is None:
            chosen = (path, meta)
    if chosen is None:
        if not any(os.path.lexists(p) for p in order):
            return UsableCheckpoint(None, problem="it has no checkpoint yet", none_saved=True)
        return UsableCheckpoint(None, problem="; ".join(problems))
    path, meta = chosen
    warning = None
    if problems:
        epoch = (meta.get("progress") or {}).get("epoch")
        at = f" (epoch {epoch})" if isinstance(epoch, int) else ""
        warning = f"{'; '.join(problems)}: using {path.name}{at}"
    return UsableCheckpoint(path, meta, warning)


def _short(exc: BaseException, path: Path) -> str:
    """The error without the file's path (the caller names the file)."""
    text = " ".join(str(exc).split())
    for prefix in (f"checkpoint {path}: ", f"{path}: ", str(path)):
        if text.startswith(prefix):
            return text[len(prefix):].strip(": ") or text
    return text


def resume_problem(run: RunFolder) -> str | None:
    """Why ``run`` cannot be resumed now, in one line, or None: a live trainer holds it, it has no
    readable checkpoint, or it already finished (``bihm train --resume`` would refuse)."""
    held, holder = run.lock_holder()
    if held:
        return f"run {run.name} is already being trained by {holder or 'another process'} (stop it first)"
    try:
        state = run.read_status().get("state")
    except BihmError as exc:
        return str(exc)
    if state == "running":
        return f"run {run.name} is still running (stop it first)"
    found = usable_checkpoint(run, "latest")
    if found.path is None:
        return f"run {run.name} cannot be resumed: {found.problem}"
    progress = found.meta.get("progress") if isinstance(found.meta.get("progress"), dict) else {}
    if progress.get("finished"):
        why = progress.get("stop_reason") or "finished"
        return (f"run {run.name} already finished ({why}); continue it from the command line with "
                f"`bihm train --resume {run.name} --epochs N` (N > {progress.get('epoch', 0)})")  # fmt: skip
    return None


def check_resume(root: Path, name: str) -> RunFolder:
    """The run ``name`` if it can be resumed now; RunError saying why not otherwise."""
    run = open_run(name, root)
    problem = resume_problem(run)
    if problem:
        raise RunError(problem)
    return run


class ActionChecks:
    """What a view of one run may offer now — the checkpoint pictures read (``model``) and why a
    resume would be refused (``resume_refusal``) — re-checked only when a checkpoint file, the run
    lock or the state changed (a live view polls twice a second)."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self.model: UsableCheckpoint | None = None
        self.resume_refusal: str | None = None

    def forget(self) -> None:
        """Check again at the next :meth:`update` (a process of the run just ended)."""
        self._key = None

    def update(self, run: RunFolder, state: str) -> None:
        key: list = [state, run.lock_holder()[0] if state != "running" else True]
        for path in (run.checkpoint_path, run.best_path):
            try:
                st = path.stat()
                key.append((st.st_size, st.st_mtime_ns, st.st_ino))
            except OSError:
                key.append(None)
        if tuple(key) != self._key:
            self._key = tuple(key)
            self.model = usable_checkpoint(run, "best")
            self.resume_refusal = resume_problem(run)
