"""Reading a checkpoint as a sequence of checks, each raising one line (docs/checkpoint-format.md):

1. file — a regular file (never a FIFO or a link out of its run folder), read from now on through
   the one descriptor that was checked; a file without a seal is named: not HDF5, foreign, or a
   checkpoint whose seal was damaged;
2. seal — size and SHA-256 of every byte after it: damaged bytes never reach the HDF5 parser;
3. hdf5 — opens as HDF5, without links or external storage;
4. schema — ``bihm-checkpoint``, a version this bihm reads;
5. meta — JSON with the required sections and types;
6. datasets — the group ``params``, numeric datasets whose declared size fits the file, read (HDF5
   checks fletcher32 on every chunk); parameters and optimizer state float32/float64, ``rng/train``
   a uint8 torch generator state (``checkpoint_schema.array_problem``);
7. parameters — the shapes the config needs, ``params_sha256``, finite values.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bihm_app.errors import CheckpointError
from bihm_app.safe_files import FileProblem, dataset_storage_problem, hdf5_link_problem, open_regular
from bihm_app.store.checkpoint_schema import (
    NUMERIC_KINDS,
    READABLE_VERSIONS,
    SCHEMA,
    SCHEMA_VERSION,
    array_problem,
    nonfinite,
    one_line,
    params_digest,
    shape_problem,
    validate_meta,
)
from bihm_app.store.seal import SEAL_SIZE, file_sha256, has_hdf5_signature, parse_seal

__all__ = ["CheckpointReader", "guarded"]

#: Attributes of schema v1 that repeated the seal: ignored, and left out of ``Checkpoint.attrs``.
V1_ONLY = ("meta_sha256", "manifest_json", "manifest_sha256")


def attr_str(v: Any) -> str | None:
    """An HDF5 string attribute as str (None if it is not one)."""
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(v, str):
        return v
    if isinstance(v, np.ndarray) and v.shape == () and v.dtype.kind in "SUO":
        return attr_str(v.item())
    return None


def attr_int(v: Any) -> int | None:
    """An HDF5 integer attribute as int (None if it is not one; a bool is not)."""
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, np.ndarray) and v.shape == () and v.dtype.kind in "iu":
        return int(v)
    return None


def plain(v: Any) -> Any:
    """An HDF5 attribute value as plain Python (for ``Checkpoint.attrs``)."""
    s = attr_str(v)
    if s is not None:
        return s
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


class CheckpointReader:
    """Walks a checkpoint file through its checks (:meth:`steps`); each raises CheckpointError."""

    def __init__(self, path: Path, verify: bool = True, within: Path | None = None) -> None:
        self.path, self.verify, self.within = Path(path), verify, within
        self.where = f"checkpoint {path}"
        self.f = None
        self.fd: int | None = None  # the checked descriptor: every later read goes through it
        self._fileobjs: list = []  # file objects HDF5 reads through (closed with the reader)
        self.size = 0
        self.seal: dict | None = None
        self.meta: dict | None = None
        self.arrays: dict[str, np.ndarray] = {}
        self.schema_version = 0
        self.identity: tuple[int, int] | None = None

    def steps(self) -> list[tuple[str, Callable[[], str]]]:
        return [("file", self.check_file), ("seal", self.check_seal), ("hdf5", self.open), ("schema", self.check_schema),
                ("meta", self.check_meta), ("datasets", self.read_datasets), ("parameters", self.check_params)]  # fmt: skip

    def replaced(self) -> bool:
        """Whether ``path`` now names another file than the one checked (a save raced us)."""
        try:
            st = self.path.stat()
        except OSError:
            return False
        return self.identity is not None and (st.st_dev, st.st_ino) != self.identity

    def fail(self, problem: str) -> CheckpointError:
        return CheckpointError(f"{self.where}: {problem}")

    # -- 1, 2: the file and its seal -----------------------------------------------------------------
    def check_file(self) -> str:
        try:
            self.fd = open_regular(self.path, self.within)
        except FileProblem as exc:
            problem = str(exc)
            raise self.fail("is a folder, not a checkpoint file" if problem.startswith("is a folder") else problem) from None
        try:
            st = os.fstat(self.fd)
            self.size, self.identity = st.st_size, (st.st_dev, st.st_ino)
            self.seal = parse_seal(os.pread(self.fd, SEAL_SIZE, 0))
            if self.seal is None:
                with open(self.fd, "rb", closefd=False) as fh:
                    signed = has_hdf5_signature(fh, self.size)
                if not signed:
                    raise self.fail(f"{'empty file' if self.size == 0 else 'not an HDF5 file'} (no HDF5 signature)")
                self._foreign_or_unsealed()
        except OSError as exc:
            raise self.fail(f"cannot read ({one_line(exc)})") from None
        return f"{self.size:,} bytes"

    def _foreign_or_unsealed(self) -> None:
        """An HDF5 file without a seal: say whether it is foreign or a damaged/edited checkpoint."""
        try:
            f = self._hdf5()
        except CheckpointError:
            raise
        except Exception as exc:
            raise self.fail(f"unreadable HDF5 file without a bihm seal ({one_line(exc)})") from None
        with f:
            self._check_schema_name(f.attrs)
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
                digest, _ = file_sha256(fh, SEAL_SIZE)
        except OSError as exc:
            raise self.fail(f"cannot read ({one_line(exc)})") from None
        if digest != self.seal["sha256"]:
            raise self.fail("file SHA-256 mismatch: the file is corrupt or was changed after it was written")
        return f"size and SHA-256 {digest[:12]}… ok"

    # -- 3, 4: HDF5 and schema ---------------------------------------------------------------------
    def _hdf5(self):
        """h5py.File of the checked descriptor's file, refused if it holds links (datasets stored
        elsewhere are refused when they are read, :meth:`_dataset_problem`).

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
            problem = hdf5_link_problem(f, datasets=False)  # each dataset read is checked as it is opened
        except Exception:
            f.close()
            raise
        if problem is not None:
            f.close()
            raise self.fail(problem)
        return f

    def open(self) -> str:
        try:
            self.f = self._hdf5()
        except OSError as exc:
            msg = one_line(exc)
            raise self.fail("truncated file (not a valid HDF5 file)" if "truncated" in msg else f"not a readable HDF5 file ({msg})") from None
        return f"HDF5 user block {self.f.userblock_size} bytes"

    def _check_schema_name(self, attrs) -> None:
        schema = attr_str(attrs.get("schema"))
        if schema is None:
            raise self.fail("foreign HDF5 file (no 'schema' attribute; not a bihm checkpoint)")
        if schema != SCHEMA:
            raise self.fail(f"foreign HDF5 file (schema {schema!r}, expected {SCHEMA!r})")

    def check_schema(self) -> str:
        self._check_schema_name(self.f.attrs)
        version = attr_int(self.f.attrs.get("schema_version"))
        if version is None:
            raise self.fail("the 'schema_version' attribute is missing or not an integer")
        if version > SCHEMA_VERSION:
            raise self.fail(f"schema version {version} is newer than this bihm reads ({SCHEMA_VERSION}); upgrade bihm-app")
        if version not in READABLE_VERSIONS:
            raise self.fail(f"schema version {version} is not supported (this bihm reads versions {READABLE_VERSIONS})")
        self.schema_version = version
        return f"{SCHEMA} v{version}"

    # -- 5, 6, 7: meta, datasets, parameters ---------------------------------------------------------
    def check_meta(self) -> str:
        text = attr_str(self.f.attrs.get("meta_json"))
        if text is None:
            raise self.fail("the 'meta_json' attribute is missing")
        try:
            meta = json.loads(text)
        except ValueError as exc:
            raise self.fail(f"invalid meta JSON ({one_line(exc)})") from None
        except RecursionError:
            raise self.fail("invalid meta JSON (nested too deeply)") from None
        problem = validate_meta(meta)
        if problem is not None:
            raise self.fail(problem)
        self.meta = meta
        return f"{len(text):,} bytes of JSON; epoch {meta['progress']['epoch']}, step {meta['progress']['step']}"

    def _dataset_problem(self, d) -> str | None:
        """Why dataset ``d`` cannot be a checkpoint array, or None after reading it into ``arrays``."""
        if d.dtype.kind not in NUMERIC_KINDS or d.dtype.fields is not None and d.dtype.kind != "c":
            return f"has dtype {d.dtype}, not numeric"
        claimed = d.dtype.itemsize * math.prod(d.shape)
        if claimed > max(self.size, 1) * 2 + 4096:
            return f"claims {claimed:,} bytes, more than the file holds"
        name = d.name.lstrip("/")
        problem = array_problem(name, d.dtype, d.shape)
        if problem is not None:
            return problem
        storage = dataset_storage_problem(d)
        if storage is not None:
            return storage
        try:
            self.arrays[name] = np.asarray(d[()], order="C")
        except OSError as exc:
            return f"unreadable ({'checksum (fletcher32) failure' if 'filter' in str(exc) else one_line(exc)})"
        return None

    def read_datasets(self) -> str:
        import h5py

        if not isinstance(self.f.get("params"), h5py.Group):
            raise self.fail("missing group 'params'")
        names: list[str] = []

        def on_object(name: bytes, info) -> None:  # names only: one object open at a time below
            if info.type != h5py.h5o.TYPE_GROUP:
                names.append(name.decode("utf-8"))  # the link check refused names that are not UTF-8

        h5py.h5o.visit(self.f.id, on_object, info=True)
        bad = []
        for name in sorted(names):
            obj = self.f[name]
            problem = self._dataset_problem(obj) if isinstance(obj, h5py.Dataset) else "is not a dataset"
            if problem is not None:
                bad.append(f"dataset '{name}' {problem}")
        if bad:
            raise self.fail(f"corrupt data: {bad[0]}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
        return f"{len(self.arrays)} datasets, {sum(a.nbytes for a in self.arrays.values()):,} bytes (fletcher32)"

    def check_params(self) -> str:
        assert self.meta is not None
        params = {k[7:]: a for k, a in self.arrays.items() if k.startswith("params/")}
        model = self.meta["config"]["model"]
        problem = shape_problem(model, {k: a.shape for k, a in params.items()})
        if problem is not None:
            raise self.fail(problem)
        if self.verify and attr_str(self.f.attrs.get("params_sha256")) != params_digest(params):
            raise self.fail("params SHA-256 mismatch (params_sha256)")
        bad = nonfinite(self.arrays)
        if bad:
            raise self.fail(f"non-finite values: {bad}")
        n = sum(a.size for a in params.values())
        return f"{len(params)} arrays, {n:,} parameters match D={model['n_visible']}, L={len(model['layers'])}"

    def attrs(self) -> dict:
        out = {k: plain(v) for k, v in self.f.attrs.items() if k != "meta_json" and k not in V1_ONLY}
        out["file_size"] = self.size
        if self.seal is not None:
            out["file_sha256"] = self.seal["sha256"]
        return out

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


def guarded(reader: CheckpointReader, step: Callable[[], str]) -> str:
    """Run one step; any unexpected exception from a damaged file becomes a CheckpointError."""
    try:
        return step()
    except CheckpointError:
        raise
    except MemoryError:
        raise reader.fail("unreadable (a damaged header asks for more memory than there is)") from None
    except Exception as exc:
        raise reader.fail(f"unreadable ({type(exc).__name__}: {one_line(exc)})") from None
