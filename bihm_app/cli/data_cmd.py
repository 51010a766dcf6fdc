"""`bihm data list|show|import|fetch|remove`: the data sets bihm knows, pictures of them, your own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from bihm_app.cli.common import cli_errors, err, out

app = typer.Typer(
    name="data",
    help="List, show, import and fetch data sets.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _parse_sha(values: list[str] | None) -> dict[str, str]:
    """``["train=HEX", "HEX"]`` -> ``{"train": HEX, "all": HEX}``."""
    from bihm_app.errors import DataError

    parsed: dict[str, str] = {}
    for v in values or []:
        split, sep, digest = v.partition("=")
        if not sep:
            split, digest = "all", v
        if split not in ("all", "train", "valid", "test"):
            raise DataError(f"--sha256 {v!r}: expected HEX or SPLIT=HEX with SPLIT train, valid or test")
        parsed[split] = digest.strip()
    return parsed


def _short_count(n: int) -> str:
    """50000 -> 50k, 26147 -> 26.1k, 1414 -> 1414."""
    if n >= 100_000:
        return f"{n / 1000:.0f}k"
    if n >= 10_000:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    return str(n)


@app.command("list")
@cli_errors
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalogue as JSON.")] = False,
) -> None:
    """Every data set: built in (verified checksums), imported or fetched, and fetchable."""
    from bihm_app.data import list_datasets
    from bihm_app.render.fit_table import Column, fit_table

    infos = list_datasets()
    if as_json:
        rows = [
            {
                "name": i.name, "description": i.description, "splits": i.splits, "dim": i.dim,
                "density": i.density, "location": i.location, "present": i.present, "verified": i.verified,
                "source": i.source, "dynamic": i.dynamic, "problem": i.problem,
            }
            for i in infos
        ]
        out.print_json(json.dumps(rows))
        return
    from bihm_app.data.paths import assets_dir, data_home

    columns = [
        Column("name", style="bold"), Column("train/valid/test", "right", drop=3, short="splits"),
        Column("dim", "right", drop=2), Column("density", "right", drop=1, short="dens."), Column("where", drop=4),
        Column("status"),
    ]  # fmt: skip
    rows = []
    for i in infos:
        sizes = "/".join(_short_count(n) for n in i.splits.values()) if i.splits else "—"
        density = f"{i.density:.3f}" if i.density is not None else "—"
        status = "[green]verified[/]" if i.verified else "[bold red]CORRUPT[/]" if i.present else "[dim]absent[/]"
        rows.append([i.name, sizes, str(i.dim or "—"), density, i.source + (", dynamic" if i.dynamic else ""), status])
    for table in fit_table(columns, rows, out.width, title="data sets"):
        out.print(table)
    out.print(f"embedded: {assets_dir() or 'not found'}   imported/fetched: {data_home()}", style="dim", markup=False, highlight=False)
    for i in infos:
        if i.problem and i.present:
            err.print(f"[bold red]{i.name}:[/] {i.problem}", highlight=False)


@app.command("show")
@cli_errors
def show(
    name: Annotated[str, typer.Argument(help="Data set name (see `bihm data list`).")],
    split: Annotated[str, typer.Option("--split", help="train, valid or test.")] = "test",
    n: Annotated[int, typer.Option("--n", min=1, max=1024, help="How many examples.")] = 64,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Also write the grid as a PNG.")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Which examples (seeded sample) and, for dynamic sets, which draw.")] = 0,
    first: Annotated[bool, typer.Option("--first", help="Show the first N rows instead of a seeded sample.")] = False,
    mode: Annotated[str, typer.Option("--mode", help="Terminal drawing: auto, halfblock or braille.")] = "auto",
    scale: Annotated[int, typer.Option("--scale", min=1, max=32, help="PNG pixels per data pixel.")] = 4,
) -> None:
    """A grid of examples in the terminal (and as a PNG with --out); UCI rows as small bitmaps."""
    import numpy as np

    from bihm_app.data import load_dataset
    from bihm_app.render.grid import make_grid
    from bihm_app.render.png import save_png
    from bihm_app.render.terminal import BitmapImage

    from bihm_app.runner.outputs import check_output

    out_path = check_output(out_path, "--out")
    ds = load_dataset(name)
    x = ds.get(split, epoch=0, seed=seed)
    count = min(n, x.shape[0])
    if first:
        idx = np.arange(count)
    else:
        idx = np.sort(np.random.Generator(np.random.PCG64(seed)).choice(x.shape[0], size=count, replace=False))
    grid = make_grid(x[idx], image_shape=ds.image_shape)
    title = f"{ds.name} {split}: {count} of {x.shape[0]:,} examples, dim {ds.dim}"
    out.print(BitmapImage(grid, mode=mode, title=title))
    labels = ds.labels(split)
    if labels is not None:
        out.print("labels: " + " ".join(str(int(v)) for v in labels[idx]), highlight=False)
    if out_path is not None:
        path = save_png(grid, out_path, scale=scale)
        out.print(f"wrote {path}", highlight=False)


@app.command("import")
@cli_errors
def import_(
    file: Annotated[Path, typer.Argument(help=".npz, .npy, .csv/.txt, .amat, .mat or .h5/.hdf5 file.")],
    name: Annotated[str, typer.Option("--name", help="Name to load it by (lower-case letters, digits, _ - .).")],
    valid_fraction: Annotated[float, typer.Option("--valid-fraction", help="Share of rows for valid when the file has no valid split.")] = 0.1,
    test_fraction: Annotated[float, typer.Option("--test-fraction", help="Share of rows for test when the file has no test split.")] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split when one is drawn.")] = 0,
    fmt: Annotated[Optional[str], typer.Option("--format", help="npz, npy, csv, amat, mat or hdf5 (default: from the extension).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an imported set of the same name.")] = False,
    max_bytes: Annotated[Optional[str], typer.Option("--max-bytes", help="Largest file read whole and largest (decompressed) data a file may declare, e.g. 4G (default 512MiB, or $BIHM_MAX_BYTES).")] = None,
) -> None:
    """Validate a file of 0/1 rows and store it as a named data set (bit-packed, checksummed)."""
    from bihm_app.data import load_dataset
    from bihm_app.data.importer import import_file
    from bihm_app.data.limits import parse_size

    cap = parse_size(max_bytes) if max_bytes is not None else None
    with err.status(f"importing {file} …"):
        folder = import_file(
            file, name, valid_fraction=valid_fraction, test_fraction=test_fraction, seed=seed, fmt=fmt, overwrite=force,
            max_bytes=cap,
        )  # fmt: skip
        ds = load_dataset(name)
    sizes = " / ".join(f"{s} {ds.size(s):,}" for s in ds.split_names)
    out.print(f"imported [bold]{name}[/]: {sizes}, dim {ds.dim}, density {ds.density():.3f} -> {folder}", highlight=False)


@app.command("fetch")
@cli_errors
def fetch(
    name: Annotated[str, typer.Argument(help="ocr_letters, rcv1, web, caltech101 — or any name with --url.")],
    sha256: Annotated[Optional[list[str]], typer.Option("--sha256", help="Expected SHA-256: HEX, or SPLIT=HEX per file (repeatable).")] = None,
    url: Annotated[Optional[str], typer.Option("--url", help="Fetch this single file instead (needs --sha256).")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="Format of --url (default: from its extension).")] = None,
    valid_fraction: Annotated[float, typer.Option("--valid-fraction")] = 0.1,
    test_fraction: Annotated[float, typer.Option("--test-fraction")] = 0.1,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Fetch again over a stored set of the same name.")] = False,
    max_bytes: Annotated[Optional[str], typer.Option("--max-bytes", help="Largest file read whole and largest (decompressed) data a file may declare, e.g. 4G (default 512MiB).")] = None,
) -> None:
    """Download a data set the package cannot ship (resumable, checksum-verified) and store it."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from bihm_app.data import load_dataset
    from bihm_app.data.fetch import fetch_dataset
    from bihm_app.data.importer import SplitPlan
    from bihm_app.data.limits import parse_size

    cap = parse_size(max_bytes) if max_bytes is not None else None
    tasks: dict[str, int] = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        console=err, transient=False,
    ) as bar:

        def progress(label: str, done: int, total: int | None) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        folder = fetch_dataset(
            name, sha256=_parse_sha(sha256), url=url, fmt=fmt, overwrite=force, progress=progress,
            plan=SplitPlan(valid_fraction, test_fraction, seed), max_bytes=cap,
        )
    ds = load_dataset(name)
    sizes = " / ".join(f"{s} {ds.size(s):,}" for s in ds.split_names)
    out.print(f"fetched [bold]{name}[/]: {sizes}, dim {ds.dim} -> {folder}", highlight=False)


@app.command("remove")
@cli_errors
def remove(name: Annotated[str, typer.Argument(help="An imported or fetched data set.")]) -> None:
    """Delete an imported or fetched data set from the data folder."""
    from bihm_app.data.builtin import BUILTINS
    from bihm_app.data.local import remove_dataset
    from bihm_app.errors import DataError

    if name in BUILTINS:
        raise DataError(f"data set '{name}' is built in and cannot be removed")
    remove_dataset(name)
    out.print(f"removed {name}", highlight=False)
