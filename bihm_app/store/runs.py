"""Run folders: ``<runs root>/<name>/`` with checkpoints, metrics, log and a status file.

::

    runs/<name>/
        checkpoint.h5      latest checkpoint (atomic writes)
        best.h5            checkpoint with the best validation log p~*
        metrics-<n>.h5     live metrics of attempt n (SWMR), one per start/resume
        train.log          the training log
        status.json        state + pid/host + progress, rewritten atomically

A ``running`` status whose process is gone (same host) reads as ``crashed``.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import stat
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bihm_app.errors import BihmError, DiskFull, RunError
from bihm_app.safe_files import FileProblem, check_regular, is_disk_full, open_regular, read_capped
from bihm_app.store.best_epoch import best_by, best_row
from bihm_app.store.metrics import ARCHIVE_NAME, archived_attempts, attempt_number, metrics_files
from bihm_app.store.runlock import LOCK_NAME, RunLock, has_lock_file, lock_holder

STATES = ("created", "running", "finished", "stopped", "crashed", "diverged")
#: Largest status.json read (a real one is a few hundred bytes).
MAX_STATUS_BYTES = 1 << 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]{0,127}$")
_TMP = re.compile(r"^\..+\.tmp$")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _parse_iso(text) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except (TypeError, ValueError, OverflowError, OSError):  # not a date, or one no clock can show
        return None


def _process_start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (Linux); None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (zombies count as gone)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:  # pids are C ints
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError):  # pragma: no cover
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().decode(errors="replace").rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to ``path`` atomically (temp file, fsync, ``os.replace``)."""
    path = Path(path)
    from bihm_app.store.atomic import default_file_mode

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and is_disk_full(exc):
            raise DiskFull(f"no space left on device while writing {path}") from None
        raise


def _write_json_in_place(path: Path, data: dict) -> None:
    """Overwrite an existing small JSON file in its own blocks (padded with spaces, which JSON
    allows), so it can be rewritten on a full disk. Not atomic: only for the disk-full path."""
    text = (json.dumps(data, indent=2, default=str) + "\n").encode()
    check_regular(path)
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        old = os.fstat(fd).st_size
        os.pwrite(fd, text + b" " * max(0, old - len(text)), 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def name_letters():
    """``a`` … ``z``, ``aa`` … ``zz``: the letters that make a default run name unique."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    yield from letters
    for first in letters:
        for second in letters:
            yield first + second


def free_run_name(root: Path, stem: str) -> str:
    """``stem`` and the first letter whose run does not exist under ``root`` (the names that
    :func:`new_run` tries, in order, for a default name)."""
    for letter in name_letters():
        if not os.path.lexists(Path(root) / (stem + letter)):
            return stem + letter
    raise RunError(f"runs folder {root}: every name {stem}a … {stem}zz is taken (give --name)")


def run_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a run folder (one clause, the first problem), or None if it can.

    A run name is one plain path component: letters, digits and ``_ . + -``, at most 128
    characters, not starting with a dot or a dash — so that neither the run folder nor the
    dashboard's launch log (``.launch/<name>.log``) can land anywhere but under the runs folder.
    """
    if not isinstance(name, str) or not name:
        return "is empty"
    if "/" in name or "\\" in name:
        return "contains a path separator ('/')"
    if ".." in name:
        return "contains '..'"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a control character"
    if any(c.isspace() for c in name):
        return "contains a space"
    if name[0] in ".-":
        return f"starts with {name[0]!r}"
    if len(name) > 128:
        return f"is {len(name)} characters long (at most 128)"
    bad = sorted({c for c in name if not re.match(r"[A-Za-z0-9_.+\-]", c)})
    if bad:
        return f"contains {' '.join(repr(c) for c in bad)} (use letters, digits and _ . + -)"
    if not _NAME.match(name):
        return "must start with a letter or a digit"
    return None


def run_name_error(name: str) -> str | None:
    """The one-line refusal of a bad run name ("run name '../x' is not allowed: it contains …"), or None."""
    problem = run_name_problem(name)
    return None if problem is None else f"run name {name!r} is not allowed: it {problem}"


def check_run_name(name: str) -> str:
    """``name`` if it can name a run; RunError saying why not otherwise."""
    error = run_name_error(name)
    if error is not None:
        raise RunError(error)
    return name


@dataclass
class RunFolder:
    """One run's folder and the files in it."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.h5"

    @property
    def best_path(self) -> Path:
        return self.path / "best.h5"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    def metrics_paths(self) -> list[Path]:
        """``metrics-<n>.h5`` files in attempt order."""
        return metrics_files(self.path)

    @property
    def archive_path(self) -> Path:
        return self.path / ARCHIVE_NAME

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    def lock(self, wait_s: float = 1.0) -> RunLock:
        """Take the run's exclusive lock (RunError naming the holder if another process has it)."""
        return RunLock(self.path).acquire(wait_s)

    def lock_holder(self) -> tuple[bool, str]:
        """(whether a live process holds the run lock, "process N on HOST")."""
        return lock_holder(self.path)

    def member(self, path: Path) -> Path:
        """``path`` (a file of this run) if it is a regular file that does not lead out of the
        run folder; RunError otherwise (FileNotFoundError-like problems included)."""
        try:
            check_regular(path, within=self.path)
        except FileProblem as exc:
            raise RunError(f"run {self.path}: {Path(path).name} {exc}") from None
        return Path(path)

    def next_metrics_path(self) -> Path:
        """``metrics-<n>.h5`` with n = 1 + the highest attempt so far (1 for a new run)."""
        numbers = [attempt_number(p) or 0 for p in self.metrics_paths()]
        numbers += list(archived_attempts(self.path))
        return self.path / f"metrics-{max(numbers, default=0) + 1}.h5"

    def write_status(self, state: str, **fields) -> dict:
        """Rewrite ``status.json`` atomically; merges with the previous status.

        ``updated`` is set to now; ``started`` is kept (or set now); for ``running`` the pid and
        host default to this process. Returns the status written.
        """
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r} (one of {', '.join(STATES)})")
        try:
            status = self._read_raw()
        except RunError:
            status = {}
        status.update(fields)
        status["state"] = state
        now = _now_iso()
        status.setdefault("started", now)
        status["updated"] = now
        if state == "running":
            status["pid"] = fields.get("pid", os.getpid())
            status["host"] = fields.get("host", socket.gethostname())
        if state in ("running", "created") and "pid" in status:
            local = status.get("host") == socket.gethostname() and isinstance(status["pid"], int)
            status["pid_start"] = _process_start_ticks(status["pid"]) if local else None
        status = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in status.items()}
        try:
            write_json_atomic(self.status_path, status)
        except DiskFull:
            # a full disk must not leave the run saying "running": rewrite the file in place
            try:
                _write_json_in_place(self.status_path, status)
            except (OSError, FileProblem):
                raise DiskFull(f"no space left on device while writing {self.status_path}") from None
        except OSError as exc:
            raise RunError(f"run {self.path}: cannot write status.json ({exc})") from None
        return status

    def _read_raw(self) -> dict:
        if not os.path.lexists(self.status_path):
            return {}
        try:
            data = json.loads(read_capped(self.status_path, MAX_STATUS_BYTES, within=self.path).decode("utf-8"))
        except FileProblem as exc:
            raise RunError(f"run {self.path}: status.json {exc}") from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise RunError(f"run {self.path}: status.json is unreadable ({' '.join(str(exc).split())})") from None
        except RecursionError:
            raise RunError(f"run {self.path}: status.json is unreadable (JSON nested too deeply)") from None
        if not isinstance(data, dict):
            raise RunError(f"run {self.path}: status.json is not a JSON object")
        return data

    def read_status(self) -> dict:
        """The status; ``{"state": "unknown"}`` without a status file. A ``created`` or
        ``running`` run whose owner is gone is reported as ``crashed``: its lock is free (the
        kernel released it when the process ended), or, for runs without a lock file, its
        process (same host) no longer exists. Raises RunError if unreadable."""
        status = self._read_raw()
        if not status:
            return {"state": "unknown"}
        state = status.get("state")
        if state not in ("running", "created") or status.get("host", socket.gethostname()) != socket.gethostname():
            return status
        pid = status.get("pid")
        if has_lock_file(self.path):
            held, _ = lock_holder(self.path)
            gone = not held
        elif isinstance(pid, int):  # no lock file: the pid and, where it can be read, its start time
            gone = not pid_alive(pid)
            if not gone and status.get("pid_start") is not None:
                gone = _process_start_ticks(pid) != status.get("pid_start")  # the pid was reused
            elif not gone and _process_start_ticks(os.getpid()) is not None:
                gone = True  # a start time we could check is missing: a forged status could name any process
        else:
            gone = state == "running"
        if gone:
            status["state"] = "crashed"
            who = f"process {pid}" if isinstance(pid, int) else "its process"
            where = "before its first checkpoint" if state == "created" else "without saying so"
            status["message"] = f"{who} on {status.get('host') or socket.gethostname()} ended {where}"
        return status

    def sweep_temp_files(self, min_age_s: float = 0.0) -> list[Path]:
        """Remove leftover ``.*.tmp`` files of killed writes (call when no writer is active)."""
        removed = []
        if not self.path.is_dir():
            return removed
        now = time.time()
        for p in self.path.iterdir():
            if _TMP.match(p.name) and p.is_file():
                try:
                    if now - p.stat().st_mtime >= min_age_s:
                        p.unlink()
                        removed.append(p)
                except OSError:
                    pass
        return removed

    def looks_like_run(self) -> bool:
        return self.path.is_dir() and (
            os.path.lexists(self.status_path)
            or os.path.lexists(self.checkpoint_path)
            or os.path.lexists(self.best_path)
            or os.path.lexists(self.archive_path)
            or bool(self.metrics_paths())
        )


def runs_root(runs_dir: Path | None = None) -> Path:
    """The runs folder: ``--runs-dir``, else ``$BIHM_HOME/runs``, else the platform data dir."""
    if runs_dir is not None:
        return Path(runs_dir).expanduser()
    home = os.environ.get("BIHM_HOME")
    if home:
        return Path(home).expanduser() / "runs"
    import platformdirs

    return Path(platformdirs.user_data_dir("bihm", appauthor=False)) / "runs"


def new_run(root: Path, name: str | None = None, *, stem: str | None = None) -> RunFolder:
    """Create ``root/<name>`` (status ``created``); without a name, the first free ``<stem><letter>``
    (the default names of ``runner/naming.py``).

    Raises RunError if the name is invalid or a run of that name exists.
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"runs folder {root}: cannot create ({exc})") from None
    candidates = [name] if name is not None else [f"{stem or 'run-'}{letter}" for letter in name_letters()]
    check_run_name(candidates[0])
    for cand in candidates:
        path = root / cand
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunError(f"run {path}: cannot create ({exc})") from None
        run = RunFolder(path)
        run.write_status("created", pid=os.getpid(), host=socket.gethostname())
        return run
    raise RunError(f"run {root / candidates[0]} already exists (pick another --name, or --resume it)")


def open_run(run: str | Path, root: Path | None = None) -> RunFolder:
    """A run by name (under ``root``) or by the path of its folder; RunError if there is none."""
    p = Path(run)
    named = Path(root) / str(run) if root is not None and _NAME.match(str(run)) else None
    if named is not None and not named.is_dir():
        named = None
    # a folder of that name in the working directory (the figures of `bihm report RUN --out .`)
    # that is not a run does not hide the run of that name
    if p.is_dir() and (named is None or RunFolder(p).looks_like_run()):
        folder = RunFolder(p)
    elif named is not None:
        folder = RunFolder(named)
    else:
        where = f" under {root}" if root is not None else ""
        raise RunError(f"no run named {str(run)!r}{where}")
    try:
        os.listdir(folder.path)
    except OSError as exc:
        raise RunError(f"run {folder.path}: cannot read the run folder ({exc.strerror or exc})") from None
    if not folder.looks_like_run():
        raise RunError(f"{folder.path} is not a run folder (no status.json, checkpoint or metrics)")
    return folder


def _is_sealed_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a regular file that starts with a bihm checkpoint's seal (a damaged
    checkpoint included: loading it says what is wrong)."""
    from bihm_app.store.seal import SEAL_MAGIC

    try:
        fd = open_regular(path)
    except (FileProblem, OSError):
        return False
    try:
        return os.pread(fd, len(SEAL_MAGIC), 0) == SEAL_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def resolve_checkpoint(arg: str | Path, root: Path, which: str = "best") -> Path:
    """A checkpoint path from a run name, a run folder or an ``.h5`` file.

    For a run, ``which="best"`` gives ``best.h5`` (falling back to ``checkpoint.h5``) and
    ``"latest"`` gives ``checkpoint.h5`` (falling back to ``best.h5``).
    """
    from bihm_app.errors import CheckpointError, ConfigError

    if which not in ("best", "latest"):
        raise ConfigError(f"--which must be best or latest, got {which!r}")
    p = Path(arg)
    # a bare name (no '/', not *.h5) names the run of that name, unless the file of that name in
    # the working directory is a checkpoint (notes in ./RUN do not hide run RUN, as for folders)
    bare = _NAME.match(str(arg)) is not None and not str(arg).endswith(".h5")
    run_named = bare and RunFolder(Path(root) / str(arg)).looks_like_run()
    if os.path.lexists(p) and not p.is_dir() and (not run_named or _is_sealed_checkpoint(p)):
        return p  # a file the user named: load_checkpoint says what is wrong with it, if anything
    if str(arg).endswith(".h5") and not p.is_dir():
        raise CheckpointError(f"checkpoint {arg}: no such file")
    run = open_run(arg, root)
    order = [run.best_path, run.checkpoint_path] if which == "best" else [run.checkpoint_path, run.best_path]
    for cand in order:
        if os.path.lexists(cand):
            try:
                return run.member(cand)
            except RunError as exc:
                raise CheckpointError(f"checkpoint {cand}: {str(exc).split(': ', 1)[1]}") from None
    raise RunError(f"run {run.name} has no checkpoint yet ({run.path})")


@dataclass
class RunSummary:
    """One line of ``bihm runs list``."""

    name: str
    status: str
    data: str | None = None
    layers: list[int] | None = None
    method: str | None = None
    epoch: int | None = None
    step: int | None = None
    best_valid: float | None = None
    updated: str | None = None
    age_s: float | None = None
    path: str = ""
    error: str | None = None
    note: str | None = None  # why an "empty" run shows nothing (not an error)

    def to_dict(self) -> dict:
        return asdict(self)


def _best_of(meta: dict) -> float | None:
    """Validation log p̃* of the epoch a checkpoint's best.h5 holds (store/best_epoch.py: the highest
    log p̃* — log p for an RWS run, the lowest error for a semi-supervised one), from its history."""
    history = meta.get("history")
    values = history.get("valid_log_ptilde") if isinstance(history, dict) else None
    if not isinstance(values, list):
        return None
    method = _section(_section(meta, "config"), "train").get("method")
    try:
        i = best_row(history, best_by(method))
    except (TypeError, ValueError):  # a hostile history (strings, nested lists): no best value
        return None
    v = values[i] if i is not None and i < len(values) else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _section(d: Any, key: str) -> dict:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, dict) else {}


def _unreadable(path: Path, exc: BaseException) -> RunSummary:
    """The summary of a run that could not be summarised: corrupt, with one line naming why."""
    if isinstance(exc, BihmError):
        reason = str(exc)
    elif isinstance(exc, RecursionError):
        reason = f"run {path}: a file in it is nested too deeply to read"
    elif isinstance(exc, OSError):
        where = exc.filename or path
        reason = f"run {path}: cannot read {where} ({exc.strerror or type(exc).__name__})"
    else:
        reason = f"run {path}: unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    return RunSummary(name=Path(path).name, status="corrupt", path=str(path), error=reason)


def summarize_run(path: Path) -> RunSummary:
    """Summary of one run folder; problems end up in ``status="corrupt"`` and ``error``, never raised."""
    try:
        return _summarize_run(Path(path))
    except Exception as exc:  # noqa: BLE001 - one bad run is shown as corrupt, never hides the others
        return _unreadable(Path(path), exc)


def _summarize_run(path: Path) -> RunSummary:
    from bihm_app.store.checkpoint import read_meta

    run = RunFolder(path)
    try:
        entries = os.listdir(run.path)  # a folder that cannot be listed (chmod 000) is unreadable, not empty
    except OSError as exc:
        raise RunError(f"run {run.path}: cannot read the run folder ({exc.strerror or exc})") from None
    s = RunSummary(name=run.name, status="unknown", path=str(run.path))
    errors: list[str] = []
    status: dict = {}
    try:
        status = run.read_status()
        state = status.get("state", "unknown")
        s.status = state if state in STATES or state == "unknown" else "corrupt"
        if s.status == "corrupt" and state != "corrupt":
            errors.append(f"{run.path / 'status.json'}: its state is not a run state ({repr(state)[:40]})")
    except BihmError as exc:
        errors.append(str(exc))
    meta = None
    for ckpt in (run.checkpoint_path, run.best_path):
        if not os.path.lexists(ckpt):
            continue
        try:
            m = read_meta(ckpt, within=run.path)
        except BihmError as exc:
            errors.append(str(exc))
            continue
        if meta is None:
            meta = m
        if s.best_valid is None:  # the latest readable checkpoint's (checkpoint.h5, else best.h5)
            s.best_valid = _best_of(m)
    if meta is not None:
        cfg = _section(meta, "config")
        s.data = _section(meta, "data").get("name")
        s.layers = list(_section(cfg, "model").get("layers", [])) or None
        s.method = _section(cfg, "train").get("method")
        s.epoch = _section(meta, "progress").get("epoch")
        s.step = _section(meta, "progress").get("step")
    # status.json may be ahead of the last checkpoint
    for key in ("data", "method"):
        if getattr(s, key) is None and isinstance(status.get(key), str):
            setattr(s, key, status[key])
    if s.layers is None and isinstance(status.get("layers"), list):
        s.layers = status["layers"]
    saved_epoch = s.epoch
    for key in ("epoch", "step"):
        v = status.get(key)
        if isinstance(v, int) and (getattr(s, key) is None or v > getattr(s, key)):
            setattr(s, key, v)
    bv = status.get("best_valid")
    # status.json's only where it is ahead of the checkpoints (a training between saves); a
    # log-probability of binary data is at most 0: a larger one is forged, not a better run
    ahead = s.best_valid is None or (isinstance(status.get("epoch"), int) and saved_epoch is not None and status["epoch"] > saved_epoch)
    if isinstance(bv, (int, float)) and math.isfinite(bv) and bv <= 0 and ahead:
        s.best_valid = float(bv)
    s.updated = status.get("updated") if isinstance(status.get("updated"), str) else None
    t = _parse_iso(s.updated) if s.updated else None
    if t is None:
        try:
            t = max(p.stat().st_mtime for p in run.path.iterdir())
        except (OSError, ValueError):
            t = None
    s.age_s = max(0.0, time.time() - t) if t is not None else None
    if errors:
        s.status = "corrupt"
        s.error = errors[0] if len(errors) == 1 else f"{errors[0]} (+{len(errors) - 1} more)"
    elif all(e == LOCK_NAME or e == run.log_path.name and _empty_file(run.log_path) for e in entries):
        _mark_empty(s, run, LOCK_NAME in entries)
    return s


def _empty_file(path: Path) -> bool:
    """A regular file of 0 bytes (a log a training opened and died before writing to)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


def _mark_empty(s: RunSummary, run: RunFolder, locked: bool) -> None:
    """A run folder holding nothing or only its lock file: "empty", with the reason in ``note``."""
    held, holder = lock_holder(run.path) if locked else (False, "")
    s.status = "empty"
    s.note = (f"nothing saved yet; {holder} holds its lock (starting?)" if held else
              f"nothing saved yet ({'only a lock file' if locked else 'an empty folder'})")  # fmt: skip
    try:
        s.age_s = max(0.0, time.time() - run.path.stat().st_mtime)
    except OSError:
        pass


def list_runs(root: Path) -> list[RunSummary]:
    """Every run folder under ``root`` (sorted by name); never raises for a bad run."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    for p in entries:
        if p.name.startswith(".") or not p.is_dir():
            continue
        out.append(summarize_run(p))  # never raises: a bad run is listed as corrupt
    return out
