"""Download data sets the package cannot ship: resumable, checksummed, atomic.

`download` streams a URL into ``<dest>.part`` (continuing an existing ``.part`` with an HTTP Range
request), verifies the SHA-256, and only then renames it to `dest`; a mismatch deletes the
download. `fetch_remote` downloads every file of a `RemoteDataset` and converts it into the
stored format imported sets use. Only the standard library (urllib) is used.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bihm_app import __version__
from bihm_app.data.builtin import BUILTINS
from bihm_app.data.importer import SplitPlan, store_raw
from bihm_app.data.integrity import fsync_dir, sha256_file
from bihm_app.data.limits import ReadLimits
from bihm_app.data.local import set_dir
from bihm_app.data.paths import data_home
from bihm_app.data.readers import RawData, detect_format, read_file
from bihm_app.data.remote import REMOTE, RemoteDataset, RemoteFile
from bihm_app.data.validate import check_name
from bihm_app.errors import DataError

#: progress(label, bytes_done, bytes_total_or_None)
Progress = Callable[[str, int, "int | None"], None]
_CHUNK = 1 << 16
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def _check_sha(sha: str, what: str) -> str:
    if not _HEX64.match(sha or ""):
        raise DataError(f"{what}: {sha!r} is not a SHA-256 (64 hex digits)")
    return sha.lower()


def download(
    url: str, dest: Path, sha256: str, *, progress: Progress | None = None, label: str = "", timeout: float = 60.0,
    max_bytes: int | None = None,
) -> Path:
    """Download `url` to `dest`, resuming ``dest.part``; verify `sha256`; return `dest`.

    ``max_bytes`` (default: the read limit, :class:`~bihm_app.data.limits.ReadLimits`, 512 MiB or
    ``--max-bytes``/``BIHM_MAX_BYTES``) caps the file: a larger declared length is refused before
    anything is written, and a stream that passes the cap is stopped and its ``.part`` deleted (a
    server that never ends filled the disk)."""
    sha256 = _check_sha(sha256, url)
    cap = ReadLimits.default(max_bytes).max_bytes
    part = dest.with_name(dest.name + ".part")

    def too_big(what: str) -> DataError:
        part.unlink(missing_ok=True)
        return DataError(f"download {url}: {what} the limit of {cap:,} bytes (--max-bytes or BIHM_MAX_BYTES "
                         "raise it); nothing was kept")  # fmt: skip

    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": f"bihm-app/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    label = label or dest.name
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the .part file is complete
            resp = None
        else:
            raise DataError(f"download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"download {url}: {reason}") from None
    if resp is not None:
        with resp:
            status = getattr(resp, "status", 200)
            if have and status != 206:
                have = 0  # the server ignored the Range request: start over
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length is not None and length.isdigit() else None
            if total is not None and total > cap:
                raise too_big(f"the server declares {total:,} bytes, more than")
            done = have
            if done > cap:
                raise too_big(f"the partial download holds {done:,} bytes, more than")
            try:
                with open(part, "ab" if have else "wb") as fh:
                    if progress:
                        progress(label, done, total)
                    while True:
                        block = resp.read(_CHUNK)
                        if not block:
                            break
                        if done + len(block) > cap:
                            fh.close()
                            raise too_big("the server sent more than")
                        fh.write(block)
                        done += len(block)
                        if progress:
                            progress(label, done, total)
                    fh.flush()
                    os.fsync(fh.fileno())
            except (OSError, urllib.error.URLError) as exc:
                raise DataError(
                    f"download {url}: interrupted after {done:,} bytes ({exc}); run the command again to resume"
                ) from None
            if total is not None and done < total:
                raise DataError(
                    f"download {url}: connection closed after {done:,} of {total:,} bytes; run the command again to resume"
                )
    digest = sha256_file(part)
    if digest != sha256:
        part.unlink(missing_ok=True)
        raise DataError(
            f"download {url}: checksum mismatch (expected sha256 {sha256[:12]}…, got {digest[:12]}…); "
            "the download was deleted"
        )
    os.replace(part, dest)
    fsync_dir(dest.parent)
    return dest


def downloads_dir(name: str) -> Path:
    """Where the raw files of a fetch are kept until they are converted."""
    return data_home() / ".downloads" / name


def fetch_remote(
    spec: RemoteDataset,
    *,
    sha256: dict[str, str] | None = None,
    urls: dict[str, str] | None = None,
    plan: SplitPlan | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    keep_downloads: bool = False,
    max_bytes: int | None = None,
) -> Path:
    """Download and convert `spec` into the data folder; return the stored set's folder.

    `sha256` / `urls` override the table per split ("train", "valid", "test" or "all").
    """
    check_name(spec.name)
    if spec.name in BUILTINS:
        raise DataError(f"data set '{spec.name}' is built in; nothing to fetch")
    if not spec.files and not urls:
        raise DataError(f"data set '{spec.name}': {spec.note or 'no download source is known'}")
    if set_dir(spec.name).exists() and not overwrite:
        raise DataError(f"data set '{spec.name}' is already in {set_dir(spec.name).parent}; pass --force to fetch again")
    sha256, urls = dict(sha256 or {}), dict(urls or {})
    files = list(spec.files) or [RemoteFile(s, u, None) for s, u in urls.items()]
    unknown = set(sha256) | set(urls)
    unknown -= {f.split for f in files}
    if unknown:
        raise DataError(f"data set '{spec.name}': no file for split(s) {', '.join(sorted(unknown))}")
    resolved = []
    for f in files:
        url = urls.get(f.split, f.url)
        sha = sha256.get(f.split, f.sha256)
        if sha is None:
            raise DataError(
                f"data set '{spec.name}': no SHA-256 is pinned for {url}; check the file yourself and pass "
                f"--sha256 {f.split}=HEX (or download it and use `bihm data import`)"
            )
        resolved.append(RemoteFile(f.split, url, _check_sha(sha, url)))

    folder = downloads_dir(spec.name)
    paths = {}
    limits = ReadLimits.default(max_bytes)  # a bad --max-bytes is refused before any download
    plan = plan or SplitPlan()
    plan.check()  # and bad split fractions too
    for f in resolved:
        paths[f.split] = download(f.url, folder / f"{f.split}-{f.filename}", f.sha256, progress=progress,
                                  label=f"{spec.name} {f.split}", max_bytes=limits.max_bytes)
    try:
        out = _convert(spec, paths, resolved, limits, plan, overwrite)
    except DataError as exc:  # the verified downloads stay for the next try; say where
        raise DataError(f"{exc} (the downloaded files are kept in {folder} for the next try; delete the folder "
                        "to free the space)") from None  # fmt: skip
    if not keep_downloads:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def _convert(spec: RemoteDataset, paths: dict[str, Path], resolved: list[RemoteFile], limits: ReadLimits,
             plan: SplitPlan, overwrite: bool) -> Path:  # fmt: skip
    """The downloaded, verified files of ``spec`` read and stored as a data set."""
    if "all" in paths:
        raw = read_file(paths["all"], spec.fmt, limits)
    else:
        parts = {s: read_file(p, spec.fmt, limits) for s, p in paths.items()}
        splits = {}
        for s, r in parts.items():
            if "all" not in r.splits:
                raise DataError(f"{paths[s]}: expected a single array for split '{s}'")
            splits[s] = np.asarray(r.splits["all"])
        raw = RawData(splits)
    origin = ", ".join(f.url for f in resolved)
    return store_raw(
        raw, spec.name, plan=plan, source="fetched", origin=origin, description=spec.description,
        image_shape=spec.image_shape, transpose=spec.transpose_images, expected_dim=spec.dim, overwrite=overwrite,
    )


def fetch_dataset(
    name: str,
    *,
    sha256: dict[str, str] | None = None,
    url: str | None = None,
    fmt: str | None = None,
    plan: SplitPlan | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    max_bytes: int | None = None,
) -> Path:
    """Fetch a set from the table (`remote.REMOTE`), or any single file given `url` and a SHA-256.

    For a name not in the table, `url` and ``sha256={"all": HEX}`` (or a bare HEX under "all")
    are required; the file's format comes from `fmt` or its extension.
    """
    if name in BUILTINS:
        raise DataError(f"data set '{name}' is built in; nothing to fetch")
    spec = REMOTE.get(name)
    if spec is not None and url is None:
        return fetch_remote(spec, sha256=sha256, plan=plan, overwrite=overwrite, progress=progress, max_bytes=max_bytes)
    if url is None:
        raise DataError(
            f"unknown data set '{name}' to fetch (known: {', '.join(REMOTE)}); "
            "give --url URL --sha256 HEX to fetch any file"
        )
    sha = (sha256 or {}).get("all")
    if sha is None:
        raise DataError(f"fetching {url}: give its SHA-256 with --sha256 HEX")
    fmt = fmt or detect_format(Path(url.split("?", 1)[0]))
    generic = RemoteDataset(
        name, spec.description if spec else f"fetched from {url}", (RemoteFile("all", url, sha),), fmt,
        dim=spec.dim if spec else None, image_shape=spec.image_shape if spec else None,
        transpose_images=spec.transpose_images if spec else False,
    )
    return fetch_remote(generic, plan=plan, overwrite=overwrite, progress=progress, max_bytes=max_bytes)
