"""Live training metrics in HDF5 with SWMR (single writer, many readers).

One file per start or resume of a run (``metrics-<attempt>.h5``): a crashed writer leaves its
file flagged "open for write", which only SWMR readers accept, so a resumed run never reopens
an old file.

Layout (schema ``bihm-metrics`` v1), all created before SWMR starts:

* ``updates`` — one row per parameter update: step, epoch, time, objective (batch estimate);
* ``epochs``  — one row per epoch: the validation estimates with standard errors, ESS, lr …;
* ``events``  — rollbacks, learning-rate changes, stops (kind + message);
* ``committed`` — int64 ``[updates, epochs, events, closed]``: the number of rows of each table
  that are complete on disk, written *after* the rows are flushed; readers never look past it,
  so they never see a half-written row, not even from a writer that was killed mid-flush.

Root attributes: ``schema``, ``schema_version``, ``package_version``, ``created``,
``run_info_json``. Attributes are not live under SWMR, so everything that changes is data.
"""

from __future__ import annotations

import json
import os
import re
import time as _time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bihm_app.errors import CheckpointError, DiskFull, RunError
from bihm_app.safe_files import FileProblem, dataset_storage_problem, hdf5_link_problem, is_disk_full, open_hdf5

SCHEMA = "bihm-metrics"
SCHEMA_VERSION = 1
LIBVER = ("v110", "v110")

UPDATE_DTYPE = np.dtype([("step", "<i8"), ("epoch", "<i8"), ("time", "<f8"), ("objective", "<f8")])
EPOCH_FIELDS = (
    "epoch",
    "step",
    "time",
    "train_objective",
    "valid_log_ptilde",
    "valid_log_ptilde_se",
    "valid_log_p",
    "valid_log_p_se",
    "log_z2",
    "log_z2_se",
    "valid_log_pstar",
    "ess",
    "lr",
    # semi-supervised runs (chapter 4); NaN otherwise. Files written before these existed lack
    # them: readers fill them with NaN.
    "valid_error",
    "valid_error_se",
    "valid_log_py",
    "valid_log_py_se",
)
EPOCH_DTYPE = np.dtype([(n, "<i8") if n in ("epoch", "step") else (n, "<f8") for n in EPOCH_FIELDS])
EVENT_KIND_LEN = 32
EVENT_MESSAGE_LEN = 400
EVENT_DTYPE = np.dtype(
    [("step", "<i8"), ("time", "<f8"), ("kind", f"S{EVENT_KIND_LEN}"), ("message", f"S{EVENT_MESSAGE_LEN}")]
)
_TABLES = (("updates", UPDATE_DTYPE, 4096), ("epochs", EPOCH_DTYPE, 64), ("events", EVENT_DTYPE, 64))


def _clip_utf8(text: str, n: int) -> bytes:
    b = str(text).encode("utf-8")
    if len(b) <= n:
        return b
    return b[:n].decode("utf-8", errors="ignore").encode("utf-8")


def _readable_as(stored: np.dtype, current: np.dtype) -> bool:
    """A stored table is readable if its columns are current ones of the same type, in order
    (an older file lacks the columns added since, e.g. the semi-supervised epoch columns)."""
    names = stored.names or ()
    return (
        stored == current
        or (bool(names) and names == current.names[: len(names)] and all(stored[n] == current[n] for n in names))
    )


def _upgrade(rows: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Rows of an older table in the current dtype, missing float columns NaN."""
    if rows.dtype == dtype:
        return rows
    out = np.zeros(len(rows), dtype=dtype)
    for n in dtype.names:
        if n in rows.dtype.names:
            out[n] = rows[n]
        elif dtype[n].kind == "f":
            out[n] = np.nan
        else:
            out[n] = -1
    return out


def decode_events(events: np.ndarray) -> list[dict]:
    """Rows of an events table as dicts with ``str`` kind and message."""
    return [
        {
            "step": int(r["step"]),
            "time": float(r["time"]),
            "kind": bytes(r["kind"]).decode("utf-8", errors="replace"),
            "message": bytes(r["message"]).decode("utf-8", errors="replace"),
        }
        for r in events
    ]


class MetricsWriter:
    """Append-only writer of one metrics file; publishes rows to SWMR readers.

    Per-update rows are buffered and flushed at most every ``flush_every_s`` seconds or every
    ``flush_rows`` rows, so the training loop is not slowed; epoch rows and events are written
    at once (with the pending updates before them).
    """

    def __init__(self, path: Path, run_info: dict, flush_every_s: float = 0.5, flush_rows: int = 1000) -> None:
        import h5py

        self.path = Path(path)
        self.flush_every_s = float(flush_every_s)
        self.flush_rows = int(flush_rows)
        self._pending: list[tuple] = []
        self._last_flush = _time.monotonic()
        self._counts = [0, 0, 0]
        self._closed = False
        try:
            info_json = json.dumps(run_info, default=str, allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"metrics file {self.path}: run info is not JSON-serialisable ({exc})") from None
        from bihm_app import __version__

        self.broken: str | None = None  # why writing stopped (disk full …); the file keeps its committed rows
        try:
            self._f = h5py.File(self.path, "w-", libver=LIBVER)
        except (OSError, FileExistsError) as exc:
            if is_disk_full(exc):
                self.path.unlink(missing_ok=True)
                raise DiskFull(f"no space left on device while writing {self.path}") from None
            raise CheckpointError(f"metrics file {self.path}: cannot create ({' '.join(str(exc).split())})") from None
        f = self._f
        try:
            f.attrs["schema"] = SCHEMA
            f.attrs["schema_version"] = np.int64(SCHEMA_VERSION)
            f.attrs["package_version"] = __version__
            f.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            f.attrs["run_info_json"] = info_json
            self._ds = {}
            for name, dtype, chunk in _TABLES:
                self._ds[name] = f.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(chunk,), dtype=dtype)
            self._committed = f.create_dataset("committed", data=np.zeros(4, dtype="<i8"))
            self._committed.attrs["columns"] = "updates,epochs,events,closed"
            f.flush()
            f.swmr_mode = True
        except BaseException as exc:
            self._abandon()
            self.path.unlink(missing_ok=True)  # nothing was committed: do not leave an empty file
            if isinstance(exc, (OSError, RuntimeError, ValueError)):
                raise self._error(exc) from None
            raise

    # -- failures -----------------------------------------------------------------------------
    def _error(self, exc: BaseException) -> Exception:
        if is_disk_full(exc):
            return DiskFull(f"no space left on device while writing {self.path}")
        return CheckpointError(f"metrics file {self.path}: cannot write ({' '.join(str(exc).split())[:200]})")

    def _abandon(self) -> None:
        """Close the file after a failed write, without writing anything more.

        A failed HDF5 write (a full disk) leaves dirty metadata in the library: closing normally
        fails and the library crashes at exit trying again. The file's descriptor is first pointed
        at /dev/null, so HDF5's last flush succeeds harmlessly; what is on disk stays what it was
        after the last successful commit, which readers can still read.
        """
        self._closed = True
        f, self._f = self._f, None
        if f is None:
            return
        try:
            fd = f.id.get_vfd_handle()
            null = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)
        except Exception:  # noqa: BLE001 - best effort: a driver without a descriptor
            pass
        for _ in range(3):  # the first close may report the error HDF5 kept from the failed write
            try:
                f.close()
                break
            except Exception:  # noqa: BLE001
                continue

    def _guarded(self, fn, *args) -> None:
        """Run one write; any failure abandons the file and becomes DiskFull or CheckpointError."""
        if self.broken is not None:
            raise DiskFull(self.broken) if self.broken.startswith("no space") else CheckpointError(self.broken)
        try:
            fn(*args)
        except (OSError, RuntimeError, ValueError) as exc:
            err = self._error(exc)
            self.broken = str(err)
            self._abandon()
            raise err from None

    # -- writing ------------------------------------------------------------------------------
    def _append(self, name: str, rows: np.ndarray) -> None:
        i = {"updates": 0, "epochs": 1, "events": 2}[name]
        ds = self._ds[name]
        n0 = self._counts[i]
        ds.resize((n0 + len(rows),))
        ds[n0 : n0 + len(rows)] = rows
        ds.flush()
        self._counts[i] = n0 + len(rows)

    def _commit(self, closed: bool = False) -> None:
        self._committed[...] = np.array([*self._counts, int(closed)], dtype="<i8")
        self._committed.flush()

    def _flush_updates(self) -> bool:
        if not self._pending:
            return False
        rows = np.array(self._pending, dtype=UPDATE_DTYPE)
        self._pending.clear()
        self._append("updates", rows)
        return True

    def log_update(self, step: int, epoch: int, time: float, objective: float) -> None:
        """One row per parameter update (buffered)."""
        self._check_open()
        self._pending.append((int(step), int(epoch), float(time), float(objective)))
        if len(self._pending) >= self.flush_rows or _time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    def log_epoch(self, row: dict) -> None:
        """One row per epoch; keys from :data:`EPOCH_FIELDS` (missing ones are NaN, unknown ones refused)."""
        self._check_open()
        unknown = sorted(set(row) - set(EPOCH_FIELDS))
        if unknown:
            raise ValueError(f"metrics file {self.path}: unknown epoch column(s) {', '.join(unknown)}")
        values = []
        for name in EPOCH_FIELDS:
            v = row.get(name)
            if name in ("epoch", "step"):
                values.append(int(v) if v is not None else -1)
            else:
                values.append(float("nan") if v is None else float(v))
        row = np.array([tuple(values)], dtype=EPOCH_DTYPE)
        self._guarded(self._write_rows, "epochs", row)

    def log_event(self, step: int, time: float, kind: str, message: str) -> None:
        """A rare event (``rollback``, ``lr-halved``, ``stopped`` …), written at once."""
        self._check_open()
        row = np.array(
            [(int(step), float(time), _clip_utf8(kind, EVENT_KIND_LEN), _clip_utf8(message, EVENT_MESSAGE_LEN))],
            dtype=EVENT_DTYPE,
        )
        self._guarded(self._write_rows, "events", row)

    def _write_rows(self, name: str, rows: np.ndarray) -> None:
        self._flush_updates()
        self._append(name, rows)
        self._commit()
        self._last_flush = _time.monotonic()

    def flush(self) -> None:
        """Publish buffered update rows to readers."""
        if self._closed:
            return
        self._guarded(self._publish)

    def _publish(self) -> None:
        if self._flush_updates():
            self._commit()
        self._last_flush = _time.monotonic()

    def close(self) -> None:
        """Flush, mark the file closed (``committed[3] = 1``) and close it. Idempotent, and it
        never raises for a failed write: the file then keeps its last committed rows and
        :attr:`broken` says why."""
        if self._closed:
            return
        try:
            self._flush_updates()
            self._commit(closed=True)
            self._f.close()
            self._closed = True
        except (OSError, RuntimeError, ValueError) as exc:
            self.broken = str(self._error(exc))
            self._abandon()
        except BaseException:
            self._abandon()
            raise

    def _check_open(self) -> None:
        if self.broken is not None:
            raise DiskFull(self.broken) if self.broken.startswith("no space") else CheckpointError(self.broken)
        if self._closed:
            raise ValueError(f"metrics file {self.path} is closed")

    @property
    def counts(self) -> dict[str, int]:
        """Rows written so far (pending updates included)."""
        return {"updates": self._counts[0] + len(self._pending), "epochs": self._counts[1], "events": self._counts[2]}

    def __enter__(self) -> "MetricsWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class MetricsDelta:
    """Rows that appeared since the previous poll (structured numpy arrays)."""

    updates: np.ndarray
    epochs: np.ndarray
    events: np.ndarray
    closed: bool = False

    def __bool__(self) -> bool:
        return bool(len(self.updates) or len(self.epochs) or len(self.events))


def unreadable(exc: BaseException) -> str:
    """What to say after a metrics file's name when h5py failed on it (one line)."""
    text = " ".join(str(exc).split())
    if "checksum" in text:  # libhdf5: "incorrect metadata checksum after all read attempts"
        return "damaged (an HDF5 metadata checksum does not match; the file cannot be read)"
    return f"unreadable ({type(exc).__name__}: {text[:200]})"


class MetricsReader:
    """Reads a metrics file while it is being written (SWMR), after it was closed, or after its
    writer was killed. :meth:`poll` returns only the rows that are new since the last poll."""

    def __init__(self, path: Path, within: Path | None = None) -> None:
        self.path = Path(path)
        where = f"metrics file {self.path}"
        try:
            self._f = open_hdf5(self.path, within, swmr=True)
        except FileProblem as exc:
            raise CheckpointError(f"{where}: {exc}") from None
        except (OSError, RuntimeError, ValueError, KeyError) as exc:  # h5py's errors for a damaged file
            raise CheckpointError(f"{where}: {unreadable(exc)}") from None
        try:
            problem = hdf5_link_problem(self._f, max_objects=64, datasets=False)  # the tables are checked below
        except Exception as exc:  # noqa: BLE001
            problem = unreadable(exc)
        if problem is not None:
            self._f.close()
            raise CheckpointError(f"{where}: {problem}")
        try:
            f = self._f
            schema = f.attrs.get("schema")
            schema = schema.decode() if isinstance(schema, bytes) else schema
            if schema != SCHEMA:
                raise CheckpointError(f"{where}: not a bihm metrics file (schema {schema!r})")
            version = int(f.attrs.get("schema_version", -1))
            if version != SCHEMA_VERSION:
                raise CheckpointError(f"{where}: metrics schema version {version} is not supported")
            try:
                self.run_info = json.loads(f.attrs.get("run_info_json", "{}"))
            except ValueError:
                raise CheckpointError(f"{where}: invalid run info JSON") from None
            self._ds = {}
            for name, dtype, _ in _TABLES:
                ds = f.get(name)
                if ds is None or not _readable_as(ds.dtype, dtype):
                    raise CheckpointError(f"{where}: table {name!r} is missing or has the wrong columns")
                self._ds[name] = ds
            self._committed = f.get("committed")
            if self._committed is None or self._committed.shape != (4,) or self._committed.dtype.kind not in "iu":
                raise CheckpointError(f"{where}: the 'committed' counter is missing")
            for name, ds in (*self._ds.items(), ("committed", self._committed)):
                storage = dataset_storage_problem(ds)
                if storage is not None:
                    raise CheckpointError(f"{where}: '{name}' {storage}")
            if any(ds.compression is not None or ds.chunks is None for ds in self._ds.values()):
                raise CheckpointError(f"{where}: tables are compressed or not chunked (not written by bihm)")
        except CheckpointError:
            self._f.close()
            raise
        except Exception as exc:
            self._f.close()
            raise CheckpointError(f"{where}: {unreadable(exc)}") from None
        self._seen = [0, 0, 0]
        self.closed = False

    def poll(self) -> MetricsDelta:
        """Refresh and return the rows committed since the previous call (each row exactly once)."""
        try:
            self._committed.refresh()
            counts = [int(n) for n in self._committed[()]]
            out = []
            size = os.stat(self.path).st_size
            for i, (name, dtype, _) in enumerate(_TABLES):
                ds = self._ds[name]
                ds.refresh()
                n = min(counts[i], ds.shape[0])
                if (n - self._seen[i]) * dtype.itemsize > size:  # uncompressed rows cannot exceed the file
                    raise CheckpointError(
                        f"metrics file {self.path}: table {name!r} claims {n:,} rows, more than the file's {size:,} bytes hold"
                    )
                if n > self._seen[i]:
                    rows = _upgrade(ds[self._seen[i] : n], dtype)
                    if name in ("updates", "epochs") and len(rows) and (rows["step"] <= 0).any():
                        # a SWMR reader does not check the file's end: the rows of a file cut short read as zeros
                        raise CheckpointError(f"metrics file {self.path}: damaged (rows past its end read as zeros: "
                                              "the file was cut short)")  # fmt: skip
                    out.append(rows)
                    self._seen[i] = n
                else:
                    out.append(np.zeros(0, dtype=dtype))
            self.closed = bool(counts[3])
        except (OSError, RuntimeError, ValueError, KeyError) as exc:  # h5py's errors for a damaged file
            raise CheckpointError(f"metrics file {self.path}: {unreadable(exc)}") from None
        return MetricsDelta(*out, closed=self.closed)

    def read_all(self) -> MetricsDelta:
        """Every committed row from the start (does not change what :meth:`poll` returns next)."""
        seen = self._seen
        self._seen = [0, 0, 0]
        try:
            return self.poll()
        finally:
            self._seen = [max(a, b) for a, b in zip(seen, self._seen)]

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "MetricsReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_ATTEMPT = re.compile(r"^metrics-(\d+)\.h5$")


def attempt_number(path: Path) -> int | None:
    """``metrics-3.h5`` -> 3; None for other names."""
    m = _ATTEMPT.match(Path(path).name)
    return int(m.group(1)) if m else None


def metrics_files(run_dir: Path) -> list[Path]:
    """The run's metrics files, in attempt order; RunError if the folder cannot be listed."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    try:
        found = [(attempt_number(p), p) for p in run_dir.iterdir() if attempt_number(p) is not None]
    except OSError as exc:  # e.g. a folder without read permission: one line, not a traceback
        raise RunError(f"run {run_dir}: cannot read the run folder ({exc.strerror or exc})") from None
    return [p for _, p in sorted(found)]


def _with_attempt(rows: np.ndarray, attempt: int) -> np.ndarray:
    dtype = np.dtype([("attempt", "<i8"), *[(n, rows.dtype[n]) for n in rows.dtype.names]])
    out = np.zeros(len(rows), dtype=dtype)
    out["attempt"] = attempt
    for n in rows.dtype.names:
        out[n] = rows[n]
    return out


@dataclass
class RunMetrics:
    """All attempts of a run concatenated; each table has an extra leading ``attempt`` column.

    When attempt k+1 resumed from an earlier step, the rows of earlier attempts after that step
    (work lost with the crash) are dropped, so steps increase along each table.
    """

    updates: np.ndarray
    epochs: np.ndarray
    events: np.ndarray
    attempts: list[int] = field(default_factory=list)
    run_info: dict[int, dict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    closed: bool = True

    def epoch_series(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """(epochs, values) of one epoch column."""
        return self.epochs["epoch"].astype(float), self.epochs[column].astype(float)


def read_run_metrics(run_dir: Path) -> RunMetrics:
    """Read the run's metrics archive (if any) and every ``metrics-<n>.h5`` it does not cover;
    an unreadable file is skipped with a warning."""
    run_dir = Path(run_dir)
    tables: dict[str, list[np.ndarray]] = {"updates": [], "epochs": [], "events": []}
    result = RunMetrics(
        updates=_with_attempt(np.zeros(0, UPDATE_DTYPE), 0),
        epochs=_with_attempt(np.zeros(0, EPOCH_DTYPE), 0),
        events=_with_attempt(np.zeros(0, EVENT_DTYPE), 0),
    )
    covered: set[int] = set()
    if (run_dir / ARCHIVE_NAME).exists() or (run_dir / ARCHIVE_NAME).is_symlink():
        try:
            archived, covered = read_archive(run_dir)
        except CheckpointError as exc:
            result.warnings.append(str(exc))
        else:
            for name in tables:
                tables[name].append(getattr(archived, name))
            result.attempts = list(archived.attempts)
            result.run_info = dict(archived.run_info)
            result.warnings = list(archived.warnings)
            result.closed = archived.closed
    for path in metrics_files(run_dir):
        attempt = attempt_number(path)
        if attempt in covered:
            continue  # left over from a compaction that was interrupted before deleting it
        try:
            with MetricsReader(path, within=run_dir) as reader:
                delta = reader.read_all()
                info = reader.run_info
        except CheckpointError as exc:
            result.warnings.append(str(exc))
            continue
        start = info.get("start_step") if isinstance(info, dict) else None
        if not isinstance(start, int):
            firsts = [int(t["step"][0]) for t in (delta.updates, delta.epochs) if len(t)]
            start = min(firsts) - 1 if firsts else None
        if start is not None:
            for name in tables:
                tables[name] = [t[t["step"] <= start] for t in tables[name]]
        for name in tables:
            tables[name].append(_with_attempt(getattr(delta, name), attempt))
        result.attempts.append(attempt)
        result.run_info[attempt] = info
        result.closed = delta.closed
    for name, parts in tables.items():
        if parts:
            setattr(result, name, np.concatenate(parts))
    return result


# ---------------------------------------------------------------------------------------------
# the archive: old attempts folded into one file, so a run that was resumed many times keeps a
# bounded number of files
# ---------------------------------------------------------------------------------------------
ARCHIVE_NAME = "metrics-archive.h5"
ARCHIVE_SCHEMA = "bihm-metrics-archive"
ARCHIVE_VERSION = 1
#: Attempt files a run may hold before the next start folds them into the archive.
MAX_ATTEMPT_FILES = 8


def _archive_dtypes() -> dict[str, np.dtype]:
    return {name: _with_attempt(np.zeros(0, dtype), 0).dtype for name, dtype, _ in _TABLES}


def read_archive(run_dir: Path) -> tuple[RunMetrics, set[int]]:
    """(the folded attempts as :class:`RunMetrics`, the attempt numbers the archive covers)."""
    path = Path(run_dir) / ARCHIVE_NAME
    where = f"metrics archive {path}"
    try:
        f = open_hdf5(path, Path(run_dir))
    except FileProblem as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    except (OSError, RuntimeError, ValueError, KeyError) as exc:  # h5py's errors for a damaged file
        raise CheckpointError(f"{where}: {unreadable(exc)}") from None
    try:
        with f:
            problem = hdf5_link_problem(f, max_objects=64, datasets=False)  # the tables are checked as they are read
            if problem is not None:
                raise CheckpointError(f"{where}: {problem}")
            if f.attrs.get("schema") not in (ARCHIVE_SCHEMA, ARCHIVE_SCHEMA.encode()):
                raise CheckpointError(f"{where}: not a bihm metrics archive")
            if int(f.attrs.get("schema_version", -1)) != ARCHIVE_VERSION:
                raise CheckpointError(f"{where}: archive schema version {f.attrs.get('schema_version')} is not supported")
            doc = json.loads(f.attrs["index_json"])
            size = os.stat(path).st_size
            tables = {}
            for name, dtype in _archive_dtypes().items():
                ds = f.get(name)
                if ds is None or ds.dtype != dtype or ds.ndim != 1 or ds.shape[0] * dtype.itemsize > size:
                    raise CheckpointError(f"{where}: table {name!r} is missing, has the wrong columns or claims too many rows")
                storage = dataset_storage_problem(ds)
                if storage is not None:
                    raise CheckpointError(f"{where}: table {name!r} {storage}")
                tables[name] = ds[()]
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - any damage is one line
        raise CheckpointError(f"{where}: {unreadable(exc)}") from None
    try:
        rm = RunMetrics(
            **tables,
            attempts=[int(a) for a in doc["attempts"]],
            run_info={int(k): v for k, v in doc["run_info"]},
            warnings=[str(w) for w in doc["warnings"]],
            closed=bool(doc["closed"]),
        )
        covered = {int(a) for a in doc["covers"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: invalid index ({exc})") from None
    return rm, covered


@dataclass
class ArchivedSeries:
    """The archive as rows of the live tables (no ``attempt`` column), for a live view that then
    tails the attempt files the archive does not cover."""

    updates: np.ndarray
    epochs: np.ndarray
    events: list[dict]
    run_info: dict | None = None  # the last archived attempt's
    covered: set[int] = field(default_factory=set)

    @classmethod
    def empty(cls) -> "ArchivedSeries":
        return cls(np.zeros(0, UPDATE_DTYPE), np.zeros(0, EPOCH_DTYPE), [])


def _without_attempt(rows: np.ndarray, dtype: np.dtype) -> np.ndarray:
    out = np.zeros(len(rows), dtype=dtype)
    for name in dtype.names:
        out[name] = rows[name]
    return out


def archive_key(run_dir: Path) -> tuple | None:
    """(inode, mtime, size) of the run's archive, or None without one: changes when it is rewritten."""
    try:
        st = os.stat(Path(run_dir) / ARCHIVE_NAME)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def read_archived_series(run_dir: Path) -> ArchivedSeries:
    """:func:`read_archive` as live-table rows; raises CheckpointError."""
    rm, covered = read_archive(run_dir)
    info = rm.run_info.get(rm.attempts[-1]) if rm.attempts else None
    return ArchivedSeries(_without_attempt(rm.updates, UPDATE_DTYPE), _without_attempt(rm.epochs, EPOCH_DTYPE),
                          decode_events(_without_attempt(rm.events, EVENT_DTYPE)),
                          info if isinstance(info, dict) else None, covered)  # fmt: skip


def archived_attempts(run_dir: Path) -> set[int]:
    """Attempt numbers folded into the run's archive (empty without one, or when unreadable)."""
    if not (Path(run_dir) / ARCHIVE_NAME).exists():
        return set()
    try:
        return read_archive(run_dir)[1]
    except CheckpointError:
        return set()


def _set_aside(path: Path) -> Path:
    """Rename a damaged file to ``<name>.unreadable`` (``.unreadable-2`` … if taken), never over
    another file: nothing of it is lost, and a new file can take its name."""
    for i in range(1, 1000):
        target = path.with_name(path.name + (".unreadable" if i == 1 else f".unreadable-{i}"))
        if not (target.exists() or target.is_symlink()):
            os.replace(path, target)
            return target
    raise RunError(f"{path}: unreadable, and 999 earlier unreadable copies are already kept beside it")


def compact_metrics(run_dir: Path, max_files: int = MAX_ATTEMPT_FILES) -> Path | None:
    """Fold every attempt file into ``metrics-archive.h5`` once there are ``max_files`` or more.

    Call it only while holding the run lock (no attempt is being written). :func:`read_run_metrics`
    returns exactly what it returned before. The archive is written atomically and lists the
    attempts it covers before any attempt file is removed, so an interruption at any point loses
    nothing. Unreadable attempt files are renamed ``metrics-<n>.h5.unreadable`` (their warning is
    kept in the archive). Returns the archive path, or None when nothing was done.
    """
    from bihm_app.store.atomic import write_file_atomic

    run_dir = Path(run_dir)
    path = run_dir / ARCHIVE_NAME
    damaged = False
    try:
        covered_before = read_archive(run_dir)[1] if path.exists() or path.is_symlink() else set()
    except CheckpointError:
        covered_before, damaged = set(), True
    files = [p for p in metrics_files(run_dir) if attempt_number(p) not in covered_before]
    if len(files) < max_files:
        return None
    merged = read_run_metrics(run_dir)
    if damaged:  # keep its bytes, never overwrite them
        kept = _set_aside(path)
        merged.warnings.append(f"metrics archive {path} was unreadable (its epochs are missing); kept as {kept.name}")
    covers = sorted(covered_before | {attempt_number(p) for p in files})
    index = {
        "attempts": merged.attempts,
        "run_info": [[a, info] for a, info in merged.run_info.items()],
        "warnings": merged.warnings,
        "closed": merged.closed,
        "covers": covers,
    }

    def image():
        import io

        import h5py

        from bihm_app import __version__

        bio = io.BytesIO()
        with h5py.File(bio, "w", libver=LIBVER) as f:
            f.attrs["schema"] = ARCHIVE_SCHEMA
            f.attrs["schema_version"] = np.int64(ARCHIVE_VERSION)
            f.attrs["package_version"] = __version__
            f.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            f.attrs["index_json"] = json.dumps(index, default=str, allow_nan=True)
            for name in ("updates", "epochs", "events"):
                f.create_dataset(name, data=getattr(merged, name))
        return bio.getbuffer()

    write_file_atomic(path, image, f"metrics archive {path}")
    readable = set(merged.attempts)
    for p in metrics_files(run_dir):
        n = attempt_number(p)
        if n not in covers:
            continue
        try:
            if n in readable:
                p.unlink()
            else:
                os.replace(p, p.with_name(p.name + ".unreadable"))
        except OSError:
            pass  # still covered by the archive, so never read twice; removed next time
    return path
