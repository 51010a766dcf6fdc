"""Self-describing, self-verifying HDF5 checkpoints (schema ``bihm-checkpoint``, version 1).

Layout (docs/checkpoint-format.md has the full description):

* a 512-byte *seal* in the HDF5 user block: ``size`` and SHA-256 of every byte after the seal,
  written last, so any change to the file after it was saved (bit flip, truncation, edit) is seen
  before the HDF5 library parses a single byte of it;
* root attributes: ``schema``, ``schema_version``, ``package_version``, ``torch_version``,
  ``created``, ``meta_json`` (+ ``meta_sha256``), ``manifest_json`` (+ ``manifest_sha256``) and
  ``params_sha256``;
* one dataset per array, grouped by the ``/`` in its name (``params/p_weights.0``,
  ``optim/state.3.exp_avg``, ``rng/train``); non-scalar arrays are chunked with fletcher32, every
  dataset carries a ``sha256`` attribute over ``dtype|shape|bytes``.

Writes are atomic (temp file in the same folder, fsync, ``os.replace``, fsync of the folder):
a crash or a kill at any moment leaves either the old or the new file, never a mixture.
Nothing is pickled. Every problem with a file is a :class:`~bihm_app.errors.CheckpointError`
with one line that names the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bihm_app.errors import CheckpointError, DiskFull
from bihm_app.safe_files import FileProblem, hdf5_link_problem, open_regular
from bihm_app.store.atomic import write_file_atomic

SCHEMA = "bihm-checkpoint"
SCHEMA_VERSION = 1

#: Size of the HDF5 user block that holds the seal (HDF5 requires a power of two >= 512).
SEAL_SIZE = 512
SEAL_MAGIC = b"bihm-checkpoint-seal"
#: The file format library bound: readable by HDF5 >= 1.10 tools, and no newer features.
LIBVER = ("v110", "v110")
#: Meta sections every checkpoint has (each a JSON object).
REQUIRED_META = ("config", "data", "progress", "history")
#: Array kinds a checkpoint may hold: bool, signed/unsigned integers, floats, complex.
_NUMERIC_KINDS = "biufc"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_NAME_PART = re.compile(r"^[A-Za-z0-9_.+\-]+$")
_HASH_CHUNK = 1 << 22


# ---------------------------------------------------------------------------------------------
# digests
# ---------------------------------------------------------------------------------------------
def array_sha256(a: np.ndarray) -> str:
    """SHA-256 of one array over ``"<dtype.str>|<d0>x<d1>…|"`` followed by its C-order bytes."""
    a = np.asarray(a, order="C")
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}|{'x'.join(str(n) for n in a.shape)}|".encode())
    h.update(a.reshape(-1).view(np.uint8) if a.size else b"")
    return h.hexdigest()


def digest_of(hashes: Mapping[str, str]) -> str:
    """SHA-256 over ``"<name>\\0<sha256>\\n"`` for every entry, sorted by name (manifest, params)."""
    h = hashlib.sha256()
    for name in sorted(hashes):
        h.update(f"{name}\0{hashes[name]}\n".encode())
    return h.hexdigest()


def params_digest(params: Mapping[str, np.ndarray]) -> str:
    """The ``params_sha256`` of a parameter dict with bare names (``p_weights.0`` …).

    Equal to the attribute a checkpoint of these parameters carries, so a model in memory can
    be matched to the file it came from.
    """
    return digest_of({f"params/{k}": array_sha256(np.asarray(v)) for k, v in params.items()})


def _text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# the loaded checkpoint
# ---------------------------------------------------------------------------------------------
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
        for c in self.checks:
            if c.ok is False:
                return c.detail
        return None

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _one_line(exc: BaseException | str) -> str:
    text = str(exc) if not isinstance(exc, str) else exc
    text = " ".join(text.split())
    return text[:300] + ("…" if len(text) > 300 else "")


def _json_default(o: Any):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def _attr_str(v: Any) -> str | None:
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(v, str):
        return v
    if isinstance(v, np.ndarray) and v.shape == () and v.dtype.kind in "SUO":
        return _attr_str(v.item())
    return None


def _attr_int(v: Any) -> int | None:
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, np.ndarray) and v.shape == () and v.dtype.kind in "iu":
        return int(v)
    return None


def _plain(v: Any) -> Any:
    """An HDF5 attribute value as plain Python (for ``Checkpoint.attrs``)."""
    s = _attr_str(v)
    if s is not None:
        return s
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_meta(meta: Any) -> str | None:
    """Why ``meta`` is not a valid checkpoint meta, or None if it is (a light, torch-free check)."""
    if not isinstance(meta, dict):
        return f"meta is a {type(meta).__name__}, not a JSON object"
    for key in REQUIRED_META:
        if key not in meta:
            return f"meta has no '{key}' section"
        if not isinstance(meta[key], dict):
            return f"meta '{key}' is not a JSON object"
    model = meta["config"].get("model")
    if not isinstance(model, dict):
        return "meta config has no 'model' section"
    nv, layers = model.get("n_visible"), model.get("layers")
    if not _is_int(nv) or nv < 1:
        return f"meta config.model.n_visible is {nv!r}, not a positive integer"
    if not isinstance(layers, list) or not layers or not all(_is_int(n) and n >= 1 for n in layers):
        return f"meta config.model.layers is {layers!r}, not a list of positive integers"
    labels = model.get("labels")
    if labels is not None:
        if not isinstance(labels, dict) or not _is_int(labels.get("n_classes")) or labels["n_classes"] < 2:
            return f"meta config.model.labels is {labels!r}, not a label layer with n_classes >= 2"
        if labels.get("placement") not in ("top", "bottom"):
            return f"meta config.model.labels.placement is {labels.get('placement')!r}, not top or bottom"
    if not isinstance(meta["data"].get("name"), str):
        return "meta data.name is missing or not a string"
    sha = meta["data"].get("sha256")
    if sha is not None and not isinstance(sha, str):
        return "meta data.sha256 is not a string"
    for key in ("epoch", "step"):
        v = meta["progress"].get(key)
        if not _is_int(v) or v < 0:
            return f"meta progress.{key} is {v!r}, not a non-negative integer"
    for key, v in meta["history"].items():
        if not isinstance(v, list):
            return f"meta history.{key} is not a list"
    return None


def _expected_param_shapes(model: dict) -> dict[str, tuple[int, ...]]:
    from bihm_app.engine.model import ModelConfig, parameter_shapes

    cfg = ModelConfig.from_dict(model)
    shapes = parameter_shapes(cfg)
    if model.get("labels") is not None:  # a semi-supervised model: plus the label layer
        from bihm_app.engine.semisup import LabelConfig, label_parameter_shapes

        shapes.update(label_parameter_shapes(cfg, LabelConfig.from_dict(model["labels"])))
    return shapes


def _shape_problem(model: dict, shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    """Why parameter ``shapes`` (bare names) do not fit the model config, or None."""
    try:
        expected = _expected_param_shapes(model)
    except (ValueError, KeyError, TypeError) as exc:
        return f"meta config.model is invalid ({_one_line(exc)})"
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    if missing:
        return f"parameters missing for layers {model.get('layers')}: {', '.join(missing[:5])}" + (
            f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        )
    if extra:
        return f"unexpected parameters for layers {model.get('layers')}: {', '.join(extra[:5])}"
    for name in sorted(expected):
        if tuple(shapes[name]) != tuple(expected[name]):
            return (
                f"parameter {name} has shape {tuple(shapes[name])}, but the config "
                f"(n_visible={model.get('n_visible')}, layers={model.get('layers')}) needs {tuple(expected[name])}"
            )
    return None


def _prepare_arrays(where: str, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if not isinstance(arrays, Mapping) or not arrays:
        raise CheckpointError(f"{where}: nothing to save (no arrays)")
    out: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if not isinstance(name, str):
            raise CheckpointError(f"{where}: array name {name!r} is not a string")
        parts = name.split("/")
        if len(parts) < 2 or any(p in ("", ".", "..") or not _NAME_PART.match(p) for p in parts):
            raise CheckpointError(
                f"{where}: array name {name!r} must look like 'group/name' (letters, digits, _ . + -)"
            )
        if hasattr(value, "detach"):  # a torch tensor slipped through: store its values
            value = value.detach().cpu().numpy()
        a = np.asarray(value)
        if a.dtype.kind not in _NUMERIC_KINDS or a.dtype.fields is not None:
            raise CheckpointError(f"{where}: array {name!r} has dtype {a.dtype}, not a numeric dtype")
        out[name] = np.asarray(a, order="C")
    names = set(out)
    for name in out:
        parts = name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in names:
                raise CheckpointError(f"{where}: {name!r} would live inside the array {'/'.join(parts[:i])!r}")
    if not any(n.startswith("params/") for n in out):
        raise CheckpointError(f"{where}: no parameters (no array named 'params/…')")
    return out


def _versions() -> tuple[str, str]:
    from bihm_app import __version__

    torch_version = "unknown"
    import sys

    if "torch" in sys.modules:
        torch_version = str(sys.modules["torch"].__version__)
    else:
        try:
            from importlib.metadata import version

            torch_version = version("torch")
        except Exception:  # pragma: no cover - torch is a dependency
            pass
    return __version__, torch_version


def _file_sha256(fh, start: int) -> tuple[str, int]:
    """SHA-256 and length of ``fh`` from byte ``start`` to its end."""
    h = hashlib.sha256()
    fh.seek(start)
    n = 0
    while True:
        block = fh.read(_HASH_CHUNK)
        if not block:
            break
        h.update(block)
        n += len(block)
    return h.hexdigest(), n


def _seal_block(size: int, digest: str) -> bytes:
    """The 512-byte seal for a file of ``size`` bytes whose bytes after the seal hash to ``digest``."""
    text = (
        SEAL_MAGIC + b" 1\n"
        + f"size {size}\nsha256 {digest}\n".encode()
        + b"This is a bihm checkpoint (HDF5 with a 512-byte user block); see docs/checkpoint-format.md\n"
    )
    return text.ljust(SEAL_SIZE, b"\0")


def _write_seal(path: str | Path) -> None:
    """Write the seal (size + SHA-256 of everything after the user block) and fsync the file."""
    with open(path, "r+b") as fh:
        digest, n = _file_sha256(fh, SEAL_SIZE)
        fh.seek(0)
        fh.write(_seal_block(SEAL_SIZE + n, digest))
        fh.flush()
        os.fsync(fh.fileno())


def _parse_seal(block: bytes) -> dict | None:
    """``{"size": int, "sha256": str}`` from a seal block, or None if it is not a (valid) seal."""
    if not block.startswith(SEAL_MAGIC + b" "):
        return None
    try:
        text = block.split(b"\0", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        return None
    lines = text.split("\n")
    if lines[0] != SEAL_MAGIC.decode() + " 1":
        return None
    fields = dict(line.split(" ", 1) for line in lines[1:3] if " " in line)
    try:
        size = int(fields["size"])
        sha = fields["sha256"]
    except (KeyError, ValueError):
        return None
    if not re.fullmatch(r"[0-9a-f]{64}", sha) or size < SEAL_SIZE:
        return None
    return {"size": size, "sha256": sha}


def _has_hdf5_signature(fh, size: int) -> bool:
    offset = 0
    while offset + 8 <= size:
        fh.seek(offset)
        if fh.read(8) == _HDF5_SIGNATURE:
            return True
        offset = 512 if offset == 0 else offset * 2
    return False


# ---------------------------------------------------------------------------------------------
# save
# ---------------------------------------------------------------------------------------------
def save_checkpoint(path: Path, arrays: Mapping[str, np.ndarray], meta: dict) -> None:
    """Write a checkpoint atomically: temp file in the same folder, fsync, ``os.replace``, fsync dir.

    ``arrays`` maps flat names (``params/p_weights.0``, ``optim/state.3.exp_avg``, ``rng/train``)
    to numeric numpy arrays (or CPU tensors); ``meta`` is a JSON-serialisable dict with at least
    ``config`` (with ``model``), ``data``, ``progress`` and ``history``. The parameter shapes must
    match ``meta["config"]["model"]``. On any error the temp file is removed, an existing file at
    ``path`` is untouched, and a :class:`CheckpointError` (or the interrupting exception) is raised.
    """
    import h5py

    path = Path(path)
    where = f"checkpoint {path}"
    data = _prepare_arrays(where, arrays)
    try:
        meta_text = json.dumps(meta, default=_json_default, allow_nan=True)
        meta_back = json.loads(meta_text)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: meta is not JSON-serialisable ({_one_line(exc)})") from None
    problem = validate_meta(meta_back)
    if problem is None:
        problem = _shape_problem(
            meta_back["config"]["model"], {k[7:]: a.shape for k, a in data.items() if k.startswith("params/")}
        )
    if problem is not None:
        raise CheckpointError(f"{where}: refusing to save: {problem}")

    nonfinite = _nonfinite(data)
    if nonfinite:
        raise CheckpointError(f"{where}: refusing to save: {nonfinite}")

    directory = path.parent
    if not directory.is_dir():
        raise CheckpointError(f"{where}: folder {directory} does not exist")
    hashes = {name: array_sha256(a) for name, a in data.items()}
    manifest_text = json.dumps(hashes, sort_keys=True)
    package_version, torch_version = _versions()

    def image() -> memoryview:
        # The HDF5 file is built in memory and reaches the disk through plain writes: a full disk
        # or any other write error is a clean OSError, never a half-closed HDF5 file in the library.
        bio = io.BytesIO()
        with h5py.File(bio, "w", libver=LIBVER, userblock_size=SEAL_SIZE) as f:
            f.attrs["schema"] = SCHEMA
            f.attrs["schema_version"] = np.int64(SCHEMA_VERSION)
            f.attrs["package_version"] = package_version
            f.attrs["torch_version"] = torch_version
            f.attrs["h5py_version"] = h5py.version.version
            f.attrs["hdf5_version"] = h5py.version.hdf5_version
            f.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            f.attrs["meta_json"] = meta_text
            f.attrs["meta_sha256"] = _text_sha256(meta_text)
            f.attrs["manifest_json"] = manifest_text
            f.attrs["manifest_sha256"] = digest_of(hashes)
            f.attrs["params_sha256"] = digest_of({k: v for k, v in hashes.items() if k.startswith("params/")})
            for name in sorted(data):
                a = data[name]
                if a.ndim > 0 and a.size > 0:
                    d = f.create_dataset(name, data=a, chunks=True, fletcher32=True)
                else:
                    d = f.create_dataset(name, data=a)
                d.attrs["sha256"] = hashes[name]
        buf = bio.getbuffer()
        buf[:SEAL_SIZE] = _seal_block(len(buf), hashlib.sha256(buf[SEAL_SIZE:]).hexdigest())
        return buf

    write_file_atomic(path, image, where)


def _nonfinite(arrays: Mapping[str, np.ndarray]) -> str | None:
    """The first parameter or optimizer array holding NaN/inf, described, or None."""
    for name in sorted(arrays):
        a = arrays[name]
        if not name.startswith(("params/", "optim/")) or a.dtype.kind not in "fc" or a.size == 0:
            continue
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            return f"{name} has {bad:,} non-finite value{'s' if bad > 1 else ''} (NaN/inf) of {a.size:,}"
    return None


# ---------------------------------------------------------------------------------------------
# load / verify: a sequence of checks, each raising CheckpointError
# ---------------------------------------------------------------------------------------------
class _Reader:
    """Walks a checkpoint file through its checks; each step raises CheckpointError."""

    def __init__(self, path: Path, verify: bool = True, within: Path | None = None) -> None:
        self.path = Path(path)
        self.verify = verify
        self.within = within
        self.where = f"checkpoint {path}"
        self.f = None
        self.fd: int | None = None  # the checked descriptor: every later read goes through it
        self._fileobjs: list = []  # file objects HDF5 reads through (closed with the reader)
        self.size = 0
        self.seal: dict | None = None
        self.meta: dict | None = None
        self.manifest: dict[str, str] | None = None
        self.arrays: dict[str, np.ndarray] = {}
        self.schema_version = 0
        self.identity: tuple[int, int] | None = None

    def replaced(self) -> bool:
        """Whether ``path`` now names another file than the one checked (a save raced us)."""
        try:
            st = self.path.stat()
        except OSError:
            return False
        return self.identity is not None and (st.st_dev, st.st_ino) != self.identity

    def fail(self, problem: str) -> CheckpointError:
        return CheckpointError(f"{self.where}: {problem}")

    # -- 1. the file and its seal -------------------------------------------------------------
    def check_file(self) -> str:
        try:
            self.fd = open_regular(self.path, self.within)
        except FileProblem as exc:
            problem = str(exc)
            raise self.fail("is a folder, not a checkpoint file" if problem.startswith("is a folder") else problem) from None
        try:
            st = os.fstat(self.fd)
            self.size, self.identity = st.st_size, (st.st_dev, st.st_ino)
            head = os.pread(self.fd, SEAL_SIZE, 0)
            self.seal = _parse_seal(head)
            if self.seal is None:
                with open(self.fd, "rb", closefd=False) as fh:
                    signed = _has_hdf5_signature(fh, self.size)
                if not signed:
                    kind = "empty file" if self.size == 0 else "not an HDF5 file"
                    raise self.fail(f"{kind} (no HDF5 signature)")
                self.foreign_or_unsealed()
        except OSError as exc:
            raise self.fail(f"cannot read ({_one_line(exc)})") from None
        return f"{self.size:,} bytes"

    def _hdf5(self):
        """h5py.File of the checked descriptor's file, refused if it holds links.

        HDF5 reads through a Python file object on (a duplicate of) the checked descriptor: the
        very bytes whose seal was verified, even if a writer has since replaced the file's name.
        """
        import h5py

        assert self.fd is not None
        fo = os.fdopen(os.dup(self.fd), "rb")
        try:
            f = h5py.File(fo, "r")
        except BaseException:
            fo.close()
            raise
        self._fileobjs.append(fo)
        try:
            problem = hdf5_link_problem(f)
        except Exception:
            f.close()
            raise
        if problem is not None:
            f.close()
            raise self.fail(problem)
        return f

    def foreign_or_unsealed(self) -> None:
        """An HDF5 file without a seal: say whether it is foreign or a damaged/edited checkpoint."""
        try:
            f = self._hdf5()
        except CheckpointError:
            raise
        except Exception as exc:
            raise self.fail(f"unreadable HDF5 file without a bihm seal ({_one_line(exc)})") from None
        with f:
            schema = _attr_str(f.attrs.get("schema"))
        if schema is None:
            raise self.fail("foreign HDF5 file (no 'schema' attribute; not a bihm checkpoint)")
        if schema != SCHEMA:
            raise self.fail(f"foreign HDF5 file (schema {schema!r}, expected {SCHEMA!r})")
        raise self.fail("the seal (user block) is missing or damaged: the file was altered after it was written")

    def check_seal(self) -> str:
        assert self.seal is not None and self.fd is not None
        want = self.seal["size"]
        if self.size < want:
            raise self.fail(f"truncated file ({self.size:,} of {want:,} bytes)")
        if self.size > want:
            raise self.fail(f"file is {self.size - want:,} bytes longer than when it was written (edited or appended to)")
        if not self.verify:
            return "size ok (SHA-256 not checked)"
        try:
            with open(self.fd, "rb", closefd=False) as fh:
                digest, _ = _file_sha256(fh, SEAL_SIZE)
        except OSError as exc:
            raise self.fail(f"cannot read ({_one_line(exc)})") from None
        if digest != self.seal["sha256"]:
            raise self.fail("file SHA-256 mismatch: the file is corrupt or was changed after it was written")
        return f"size and SHA-256 {digest[:12]}… ok"

    # -- 2. HDF5 and schema ---------------------------------------------------------------------
    def open(self) -> str:
        try:
            self.f = self._hdf5()
        except OSError as exc:
            msg = _one_line(exc)
            if "truncated" in msg:
                raise self.fail("truncated file (not a valid HDF5 file)") from None
            raise self.fail(f"not a readable HDF5 file ({msg})") from None
        return f"HDF5 user block {self.f.userblock_size} bytes"

    def check_schema(self) -> str:
        attrs = self.f.attrs
        schema = _attr_str(attrs.get("schema"))
        if schema is None:
            raise self.fail("foreign HDF5 file (no 'schema' attribute; not a bihm checkpoint)")
        if schema != SCHEMA:
            raise self.fail(f"foreign HDF5 file (schema {schema!r}, expected {SCHEMA!r})")
        version = _attr_int(attrs.get("schema_version"))
        if version is None:
            raise self.fail("the 'schema_version' attribute is missing or not an integer")
        if version > SCHEMA_VERSION:
            raise self.fail(
                f"schema version {version} is newer than this bihm reads ({SCHEMA_VERSION}); upgrade bihm-app"
            )
        if version != SCHEMA_VERSION:
            raise self.fail(f"schema version {version} is not supported (this bihm reads version {SCHEMA_VERSION})")
        self.schema_version = version
        return f"{SCHEMA} v{version}"

    # -- 3. meta and manifest -------------------------------------------------------------------
    def check_meta(self) -> str:
        text = _attr_str(self.f.attrs.get("meta_json"))
        if text is None:
            raise self.fail("the 'meta_json' attribute is missing")
        if self.verify and _attr_str(self.f.attrs.get("meta_sha256")) != _text_sha256(text):
            raise self.fail("meta JSON checksum mismatch (meta_sha256)")
        try:
            meta = json.loads(text)
        except ValueError as exc:
            raise self.fail(f"invalid meta JSON ({_one_line(exc)})") from None
        problem = validate_meta(meta)
        if problem is not None:
            raise self.fail(problem)
        self.meta = meta
        return f"{len(text):,} bytes of JSON; epoch {meta['progress']['epoch']}, step {meta['progress']['step']}"

    def check_manifest(self) -> str:
        import h5py

        text = _attr_str(self.f.attrs.get("manifest_json"))
        if text is None:
            raise self.fail("the 'manifest_json' attribute is missing")
        try:
            manifest = json.loads(text)
        except ValueError as exc:
            raise self.fail(f"invalid manifest JSON ({_one_line(exc)})") from None
        if not isinstance(manifest, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in manifest.items()
        ):
            raise self.fail("the manifest is not a JSON object of name -> sha256")
        if self.verify and _attr_str(self.f.attrs.get("manifest_sha256")) != digest_of(manifest):
            raise self.fail("manifest checksum mismatch (manifest_sha256)")
        if "params" not in self.f or not isinstance(self.f["params"], h5py.Group):
            raise self.fail("missing group 'params'")
        present: list[str] = []
        others: list[str] = []

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                present.append(name)
            elif not isinstance(obj, h5py.Group):  # pragma: no cover - datatypes etc.
                others.append(name)

        self.f.visititems(visit)
        added = sorted(set(present) - set(manifest)) + sorted(others)
        removed = sorted(set(manifest) - set(present))
        if added or removed:
            parts = []
            if removed:
                parts.append(f"missing {', '.join(removed[:4])}" + (f" (+{len(removed) - 4})" if len(removed) > 4 else ""))
            if added:
                parts.append(f"not listed {', '.join(added[:4])}" + (f" (+{len(added) - 4})" if len(added) > 4 else ""))
            raise self.fail(f"manifest mismatch: {'; '.join(parts)}")
        self.manifest = manifest
        return f"{len(manifest)} datasets listed and present"

    # -- 4. the data ----------------------------------------------------------------------------
    def read_datasets(self) -> str:
        import h5py

        assert self.manifest is not None
        bad: list[str] = []
        first_problem = ""
        total = 0
        for name in sorted(self.manifest):
            d = self.f[name]
            problem = None
            if not isinstance(d, h5py.Dataset):  # pragma: no cover - checked by the manifest
                problem = "is not a dataset"
            elif d.dtype.kind not in _NUMERIC_KINDS or d.dtype.fields is not None and d.dtype.kind != "c":
                problem = f"has dtype {d.dtype}, not numeric"
            elif d.dtype.itemsize * math.prod(d.shape) > max(self.size, 1) * 2 + 4096:
                problem = f"claims {d.dtype.itemsize * math.prod(d.shape):,} bytes, more than the file holds"
            else:
                try:
                    a = np.asarray(d[()], order="C")
                except OSError as exc:
                    problem = f"unreadable ({'checksum (fletcher32) failure' if 'filter' in str(exc) else _one_line(exc)})"
                else:
                    if self.verify:
                        want = _attr_str(d.attrs.get("sha256"))
                        got = array_sha256(a)
                        if want != self.manifest[name] or got != want:
                            problem = "SHA-256 mismatch"
                    if problem is None:
                        self.arrays[name] = a
                        total += a.nbytes
            if problem is not None:
                bad.append(name)
                if not first_problem:
                    first_problem = f"dataset '{name}' {problem}"
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise self.fail(f"corrupt data: {first_problem}{more}")
        how = "fletcher32 + SHA-256" if self.verify else "fletcher32"
        return f"{len(self.arrays)} datasets, {total:,} bytes ({how})"

    def check_params(self) -> str:
        assert self.meta is not None
        params = {k[7:]: a for k, a in self.arrays.items() if k.startswith("params/")}
        problem = _shape_problem(self.meta["config"]["model"], {k: a.shape for k, a in params.items()})
        if problem is not None:
            raise self.fail(problem)
        if self.verify:
            want = _attr_str(self.f.attrs.get("params_sha256"))
            got = digest_of({f"params/{k}": array_sha256(a) for k, a in params.items()})
            if want != got:
                raise self.fail("params SHA-256 mismatch (params_sha256)")
        nonfinite = _nonfinite(self.arrays)
        if nonfinite:
            raise self.fail(f"non-finite values: {nonfinite}")
        n = sum(a.size for a in params.values())
        model = self.meta["config"]["model"]
        return f"{len(params)} arrays, {n:,} parameters match D={model['n_visible']}, L={len(model['layers'])}"

    def steps(self) -> list[tuple[str, Callable[[], str]]]:
        return [
            ("file", self.check_file),
            ("seal", self.check_seal),
            ("hdf5", self.open),
            ("schema", self.check_schema),
            ("meta", self.check_meta),
            ("manifest", self.check_manifest),
            ("datasets", self.read_datasets),
            ("parameters", self.check_params),
        ]

    def close(self) -> None:
        if self.f is not None:
            try:
                self.f.close()
            except Exception:  # pragma: no cover
                pass
            self.f = None
        for fo in self._fileobjs:
            fo.close()
        self._fileobjs.clear()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def attrs(self) -> dict:
        skip = {"meta_json", "manifest_json"}
        out = {k: _plain(v) for k, v in self.f.attrs.items() if k not in skip}
        out["file_size"] = self.size
        if self.seal is not None:
            out["file_sha256"] = self.seal["sha256"]
        return out


def _guarded(reader: _Reader, step: Callable[[], str]) -> str:
    """Run one step; any unexpected exception from a damaged file becomes a CheckpointError."""
    try:
        return step()
    except CheckpointError:
        raise
    except MemoryError:
        raise reader.fail("unreadable (a damaged header asks for more memory than there is)") from None
    except Exception as exc:
        raise reader.fail(f"unreadable ({type(exc).__name__}: {_one_line(exc)})") from None


def load_checkpoint(path: Path, verify: bool = True, within: Path | None = None) -> Checkpoint:
    """Read and check a checkpoint; raise :class:`CheckpointError` (one line) on any problem.

    With ``verify=False`` the SHA-256 checks (whole file, meta, manifest, datasets, params) are
    skipped — size, structure, shapes and HDF5's own fletcher32 checks still run. Use it only
    for files you trust: without the whole-file check, damaged bytes reach the HDF5 parser, and
    HDF5 can loop forever on some damaged metadata.
    """
    for attempt in range(3):
        reader = _Reader(Path(path), verify=verify, within=within)
        try:
            for _, step in reader.steps():
                _guarded(reader, step)
            if reader.replaced() and attempt < 2:
                continue  # a writer replaced the file while we read it: read the new one
            return Checkpoint(
                path=Path(path),
                arrays=reader.arrays,
                meta=reader.meta,
                schema_version=reader.schema_version,
                attrs=reader.attrs(),
            )
        except CheckpointError:
            if reader.replaced() and attempt < 2:
                continue
            raise
        finally:
            reader.close()
    raise AssertionError("unreachable")  # pragma: no cover


def verify_checkpoint(path: Path, within: Path | None = None) -> VerifyReport:
    """Run every check and report each one; never raises for a bad file.

    After a failure that makes the rest meaningless or unsafe (no file, a broken seal, not HDF5,
    wrong schema) the remaining checks are reported as skipped.
    """
    reader = _Reader(Path(path), verify=True, within=within)
    report = VerifyReport(path=Path(path))
    # after a seal failure the bytes are not the ones written: HDF5 is not asked to parse them
    # (damaged HDF5 metadata can make the library loop forever)
    fatal = {"file", "seal", "hdf5", "schema", "meta", "manifest", "datasets"}
    stopped = False
    try:
        for name, step in reader.steps():
            if stopped:
                report.checks.append(VerifyCheck(name, None, "skipped"))
                continue
            try:
                detail = _guarded(reader, step)
                report.checks.append(VerifyCheck(name, True, detail))
            except CheckpointError as exc:
                report.checks.append(VerifyCheck(name, False, str(exc)))
                stopped = name in fatal
    finally:
        reader.close()
    return report


#: (path, size, mtime_ns, inode, ctime_ns) of files whose seal was verified in this process.
_SEAL_VERIFIED: dict[tuple, str] = {}


def read_meta(path: Path, within: Path | None = None) -> dict:
    """Only the meta (no array is read); raises :class:`CheckpointError`.

    Checks existence, the seal (size and whole-file SHA-256, remembered per process for an
    unchanged file, so polling is cheap), schema and meta. The seal is checked so that damaged
    bytes never reach the HDF5 parser.
    """
    path = Path(path)
    reader = _Reader(path, verify=True, within=within)
    try:
        _guarded(reader, reader.check_file)
        try:
            st = path.stat()
            key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        except OSError:
            key = None
        if key is not None and reader.seal is not None and _SEAL_VERIFIED.get(key) == reader.seal["sha256"]:
            reader.verify = False  # same bytes as last time: only the size check
            _guarded(reader, reader.check_seal)
        else:
            _guarded(reader, reader.check_seal)
            if key is not None and reader.seal is not None:
                if len(_SEAL_VERIFIED) > 4096:
                    _SEAL_VERIFIED.clear()
                _SEAL_VERIFIED[key] = reader.seal["sha256"]
        reader.verify = True
        for step in (reader.open, reader.check_schema, reader.check_meta):
            _guarded(reader, step)
        return reader.meta
    finally:
        reader.close()
