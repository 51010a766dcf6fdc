"""Self-describing, self-verifying HDF5 checkpoints (schema ``bihm-checkpoint`` v2; v1 files load too).

What protects a user's checkpoint, and where it lives (docs/checkpoint-format.md says which failure
each one catches):

* the whole-file **seal** — size and SHA-256 of every byte after the 512-byte HDF5 user block,
  checked before HDF5 parses anything (``store/seal.py``);
* HDF5's **fletcher32** on every chunk, for readers that skip the seal (h5py, ``h5dump``);
* the **schema and shape checks** — schema name and version, the meta's sections and types, the
  parameter shapes the config needs, finite values (``store/checkpoint_schema.py``);
* **atomic writes** — temp file, fsync, ``os.replace``, fsync of the folder (``store/atomic.py``).

``params_sha256`` identifies the parameters (eval caches, fine-tuning's parent). Nothing is
pickled. The checks run in order in ``store/checkpoint_reader.py``; every problem is a
:class:`~bihm_app.errors.CheckpointError` with one line that names the file.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bihm_app.errors import CheckpointError
from bihm_app.store.atomic import write_file_atomic
from bihm_app.store.checkpoint_reader import CheckpointReader, guarded
from bihm_app.store.checkpoint_schema import (  # noqa: F401  (SCHEMA …: re-exported)
    SCHEMA,
    SCHEMA_VERSION,
    array_sha256,
    digest_of,
    json_default,
    nonfinite,
    one_line,
    params_digest,
    prepare_arrays,
    shape_problem,
    validate_meta,
)
from bihm_app.store.seal import SEAL_SIZE, seal_block

__all__ = ["Checkpoint", "VerifyCheck", "VerifyReport", "save_checkpoint", "load_checkpoint", "verify_checkpoint",
           "read_meta", "params_digest", "SCHEMA", "SCHEMA_VERSION", "SEAL_SIZE"]  # fmt: skip

#: The file format library bound: readable by HDF5 >= 1.10 tools, and no newer features.
LIBVER = ("v110", "v110")


@dataclass
class Checkpoint:
    """A checkpoint read back from disk (every check passed)."""

    path: Path
    arrays: dict[str, np.ndarray]
    meta: dict
    schema_version: int
    attrs: dict = field(default_factory=dict)

    def group(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays whose name starts with ``prefix + "/"``, with that prefix stripped."""
        p = prefix.rstrip("/") + "/"
        return {k[len(p) :]: v for k, v in self.arrays.items() if k.startswith(p)}

    def params(self) -> dict[str, np.ndarray]:
        """The model parameters by their bare names (``p_prior``, ``p_weights.0`` …)."""
        return self.group("params")

    def model_config(self):
        """The :class:`~bihm_app.engine.model.ModelConfig` recorded in the meta."""
        from bihm_app.engine.model import ModelConfig

        return ModelConfig.from_dict(self.meta["config"]["model"])

    @property
    def progress(self) -> dict:
        return self.meta["progress"]

    @property
    def history(self) -> dict:
        return self.meta["history"]

    def n_parameters(self) -> int:
        return int(sum(a.size for a in self.params().values()))


@dataclass
class VerifyCheck:
    """One line of a verification: ``ok`` is True, False, or None (skipped)."""

    name: str
    ok: bool | None
    detail: str = ""


@dataclass
class VerifyReport:
    """Result of :func:`verify_checkpoint`: every check with its outcome."""

    path: Path
    checks: list[VerifyCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok is not False for c in self.checks)

    @property
    def error(self) -> str | None:
        """The first failing check's detail, or None."""
        return next((c.detail for c in self.checks if c.ok is False), None)

    def to_dict(self) -> dict:
        checks = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks]
        return {"path": str(self.path), "ok": self.ok, "checks": checks}


# -- save ------------------------------------------------------------------------------------------
def _versions() -> tuple[str, str]:
    from bihm_app import __version__

    if "torch" in sys.modules:
        return __version__, str(sys.modules["torch"].__version__)
    try:
        from importlib.metadata import version

        return __version__, version("torch")
    except Exception:  # pragma: no cover - torch is a dependency
        return __version__, "unknown"


def _checked_meta(where: str, meta: dict, data: Mapping[str, np.ndarray]) -> str:
    """The meta as JSON, after the checks a reader will make (sections, types, parameter shapes)."""
    try:
        text = json.dumps(meta, default=json_default, allow_nan=True)
        back = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: meta is not JSON-serialisable ({one_line(exc)})") from None
    problem = validate_meta(back)
    if problem is None:
        problem = shape_problem(back["config"]["model"], {k[7:]: a.shape for k, a in data.items() if k.startswith("params/")})
    if problem is None:
        problem = nonfinite(data)
    if problem is not None:
        raise CheckpointError(f"{where}: refusing to save: {problem}")
    return text


def _image(data: Mapping[str, np.ndarray], meta_text: str) -> memoryview:
    """The sealed file's bytes: HDF5 built in memory (a write error is then a clean OSError of the
    plain writes that follow, never a half-closed HDF5 file in the library), then the seal."""
    import h5py

    package_version, torch_version = _versions()
    bio = io.BytesIO()
    with h5py.File(bio, "w", libver=LIBVER, userblock_size=SEAL_SIZE) as f:
        for key, value in (("schema", SCHEMA), ("schema_version", np.int64(SCHEMA_VERSION)),
                           ("package_version", package_version), ("torch_version", torch_version),
                           ("h5py_version", h5py.version.version), ("hdf5_version", h5py.version.hdf5_version),
                           ("created", datetime.now(timezone.utc).isoformat(timespec="seconds")), ("meta_json", meta_text),
                           ("params_sha256", params_digest({k[7:]: a for k, a in data.items() if k.startswith("params/")}))):  # fmt: skip
            f.attrs[key] = value
        for name in sorted(data):
            a = data[name]
            chunked = a.ndim > 0 and a.size > 0
            f.create_dataset(name, data=a, chunks=True if chunked else None, fletcher32=chunked)
    buf = bio.getbuffer()
    buf[:SEAL_SIZE] = seal_block(len(buf), hashlib.sha256(buf[SEAL_SIZE:]).hexdigest())
    return buf


def save_checkpoint(path: Path, arrays: Mapping[str, np.ndarray], meta: dict) -> None:
    """Write a checkpoint atomically: temp file in the same folder, fsync, ``os.replace``, fsync dir.

    ``arrays`` maps flat names (``params/p_weights.0``, ``optim/state.3.exp_avg``, ``rng/train``)
    to numeric numpy arrays (or CPU tensors); ``meta`` is a JSON-serialisable dict with at least
    ``config`` (with ``model``), ``data``, ``progress`` and ``history``. The parameter shapes must
    match ``meta["config"]["model"]``; parameters and optimizer state must be finite. On any error
    the temp file is removed, an existing file at ``path`` is untouched, and a
    :class:`CheckpointError` (or the interrupting exception) is raised.
    """
    path = Path(path)
    where = f"checkpoint {path}"
    data = prepare_arrays(where, arrays)
    meta_text = _checked_meta(where, meta, data)
    if not path.parent.is_dir():
        raise CheckpointError(f"{where}: folder {path.parent} does not exist")
    write_file_atomic(path, lambda: _image(data, meta_text), where)


# -- load, verify, read_meta -----------------------------------------------------------------------
def load_checkpoint(path: Path, verify: bool = True, within: Path | None = None) -> Checkpoint:
    """Read and check a checkpoint; raise :class:`CheckpointError` (one line) on any problem.

    With ``verify=False`` the SHA-256 checks (whole file, params) are skipped — size, structure,
    shapes and HDF5's own fletcher32 checks still run. Use it only for files you trust: without the
    whole-file check, damaged bytes reach the HDF5 parser, and HDF5 can loop forever on some
    damaged metadata. A file that a writer replaces while it is read is read again (up to 3 times).
    """
    for attempt in range(3):
        reader = CheckpointReader(Path(path), verify=verify, within=within)
        try:
            for _, step in reader.steps():
                guarded(reader, step)
            if reader.replaced() and attempt < 2:
                continue  # a writer replaced the file while we read it: read the new one
            return Checkpoint(Path(path), reader.arrays, reader.meta, reader.schema_version, reader.attrs())
        except CheckpointError:
            if reader.replaced() and attempt < 2:
                continue
            raise
        finally:
            reader.close()
    raise AssertionError("unreachable")  # pragma: no cover


def verify_checkpoint(path: Path, within: Path | None = None) -> VerifyReport:
    """Run every check and report each one; never raises for a bad file.

    After a failure that makes the rest meaningless or unsafe (no file, a broken seal — HDF5 is
    not asked to parse damaged bytes —, not HDF5, wrong schema, bad meta or data) the remaining
    checks are reported as skipped.
    """
    reader = CheckpointReader(Path(path), verify=True, within=within)
    report = VerifyReport(path=Path(path))
    stopped = False
    try:
        for name, step in reader.steps():
            if stopped:
                report.checks.append(VerifyCheck(name, None, "skipped"))
                continue
            try:
                report.checks.append(VerifyCheck(name, True, guarded(reader, step)))
            except CheckpointError as exc:
                report.checks.append(VerifyCheck(name, False, str(exc)))
                stopped = name != "parameters"
    finally:
        reader.close()
    return report


#: (path, size, mtime_ns, inode, ctime_ns) of files whose seal was verified in this process.
_SEAL_VERIFIED: dict[tuple, str] = {}
#: The same key -> (seal SHA-256, meta) of files whose meta was read and checked in this process:
#: the meta is a function of the file's bytes, which the seal names.
_META_READ: dict[tuple, tuple[str, dict]] = {}


def _seal_key(path: Path) -> tuple | None:
    try:
        st = path.stat()
        return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    except OSError:
        return None


def read_meta(path: Path, within: Path | None = None) -> dict:
    """Only the meta (no array is read); raises :class:`CheckpointError`.

    Checks existence, the seal (size and whole-file SHA-256, remembered per process for an
    unchanged file, so polling is cheap), schema and meta. The seal is checked so that damaged
    bytes never reach the HDF5 parser. The checked meta of an unchanged file (same key and seal as
    a verified read in this process) is remembered too: the dashboard's polling then opens no HDF5
    file. Returns a copy the caller may change.
    """
    path = Path(path)
    reader = CheckpointReader(path, verify=True, within=within)
    try:
        guarded(reader, reader.check_file)
        key = _seal_key(path)
        sha = reader.seal["sha256"] if reader.seal is not None else None
        known = key is not None and sha is not None and _SEAL_VERIFIED.get(key) == sha
        reader.verify = not known  # same bytes as last time: only the size check
        guarded(reader, reader.check_seal)
        if known and _META_READ.get(key, ("", None))[0] == sha:
            return copy.deepcopy(_META_READ[key][1])
        if key is not None and sha is not None and not known:
            if len(_SEAL_VERIFIED) > 4096:
                _SEAL_VERIFIED.clear()
            _SEAL_VERIFIED[key] = sha
        reader.verify = True
        for step in (reader.open, reader.check_schema, reader.check_meta):
            guarded(reader, step)
        if key is not None and sha is not None:
            if len(_META_READ) > 4096:
                _META_READ.clear()
            _META_READ[key] = (sha, copy.deepcopy(reader.meta))
        return reader.meta
    finally:
        reader.close()
