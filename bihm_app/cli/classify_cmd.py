"""`bihm classify`: classification error, per-class errors, confusion matrix and the most
confidently wrong digits of a semi-supervised run (thesis chapter 4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from bihm_app.cli.common import cli_errors, out, progress_bar, runs_root
from bihm_app.errors import ConfigError


def confusion_table(confusion, title: str, width: int) -> list:
    """The confusion matrix, rows true class, columns predicted, diagonal green, fitted to ``width``
    (compact, or the classes split over two tables, never a count cut)."""
    from bihm_app.render.fit_table import Column, fit_table

    C = len(confusion)
    columns = [Column("true \\ pred", "right", short="t\\p", style="bold"), *(Column(str(j), "right") for j in range(C)),
               Column("error", "right")]  # fmt: skip
    rows = []
    for i, row in enumerate(confusion):
        n = sum(row)
        cells = [f"[bold green]{v}[/]" if i == j else (f"[red]{v}[/]" if v else "[dim]0[/]") for j, v in enumerate(row)]
        rows.append([str(i), *cells, f"{100 * (1 - row[i] / n):.1f} %" if n else "—"])
    return fit_table(columns, rows, width, title=title)


@cli_errors
def classify(
    run: Annotated[str, typer.Argument(help="Run name, run folder or checkpoint file of a semi-supervised run.")],
    split: Annotated[str, typer.Option(help="Data split to classify.")] = "test",
    k: Annotated[int, typer.Option("-K", "--samples", help="Importance samples per point for B̃(x, y).")] = 100,
    n: Annotated[int, typer.Option("--n", help="Classify N points drawn at random from the split (seeded by --seed; 0: all).")] = 0,
    batch: Annotated[int, typer.Option(help="Data points per batch.")] = 100,
    wrong: Annotated[int, typer.Option("--wrong", help="How many of the most confidently wrong points to show.")] = 16,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Write the confusion matrix as PNG here (and the wrong digits next to it, *-wrong.png).")] = None,
    which: Annotated[str, typer.Option(help="best or latest checkpoint of a run.")] = "best",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder.")] = None,
) -> None:
    """Classify a split with argmax_y B̃(x, y): error ± SE, per-class errors, confusion matrix, mistakes."""
    from bihm_app.runner.classify import classify_run
    from bihm_app.runner.outputs import wrong_png

    _check_outputs(wrong, out_path)
    with progress_bar() as prog:
        task = prog.add_task(f"classify K = {k}", total=None)
        res = classify_run(run, runs_root(runs_dir), split, k, seed=seed, n=n, batch=batch, n_wrong=wrong,
                           which=which, device=device, progress=lambda m: prog.advance(task, m),
                           on_start=lambda total: prog.update(task, total=total))  # fmt: skip
    ev = res.evaluation
    files = {}
    if out_path is not None:
        from bihm_app.render.classes import save_captioned_grid_png, save_confusion_png

        title = f"{res.data} / {split}: error {100 * ev.error.mean:.2f} ± {100 * ev.error.se:.2f} % (K = {k})"
        files["confusion_png"] = str(save_confusion_png(ev.confusion.numpy(), out_path, title))
        if len(res.wrong_index):
            captions = [f"{int(ev.y[i])}->{int(ev.predicted[i])} {c:.2f}" for i, c in zip(res.wrong_index, res.wrong_confidence)]
            wrong_path = wrong_png(out_path)
            files["wrong_png"] = str(save_captioned_grid_png(res.wrong_images, captions, wrong_path, image_shape=res.image_shape))
    if as_json:
        out.print_json(json.dumps({"checkpoint": res.checkpoint, **res.to_dict(), **files}))
        return
    out.print(
        f"{res.data} / {split} — {ev.n} points — {Path(res.checkpoint).name} (label {res.placement}, K = {k})\n"
        f"error [bold]{100 * ev.error.mean:.2f} ± {100 * ev.error.se:.2f} %[/]   "
        f"log p̃*(y|x) {ev.log_py.mean:.3f} ± {ev.log_py.se:.3f}   log p̃*(x) {ev.log_ptilde.mean:.2f} ± {ev.log_ptilde.se:.2f}",
        highlight=False,
    )
    for table in confusion_table(ev.confusion.tolist(), "confusion matrix (rows: true class)", out.width):
        out.print(table)
    if len(res.wrong_index):
        from bihm_app.render.grid import make_grid
        from bihm_app.render.terminal import BitmapImage

        shown = res.wrong_images[: min(8, len(res.wrong_images))]
        grid = make_grid(shown, ncol=len(shown), image_shape=res.image_shape) if res.image_shape else None
        labels = "  ".join(f"{int(ev.y[i])}→{int(ev.predicted[i])} ({c:.2f})" for i, c in zip(res.wrong_index[:8], res.wrong_confidence[:8]))
        if grid is not None:
            out.print(BitmapImage(grid, title="most confidently wrong (true→predicted, p̃*)"))
        out.print(labels, highlight=False)
    for f in files.values():
        out.print(f"wrote {f}", highlight=False)


def _check_outputs(wrong: int, out_path: Path | None) -> None:
    """--wrong and --out, before any work."""
    from bihm_app.runner.outputs import check_output, wrong_png

    if wrong < 0:
        raise ConfigError(f"--wrong must be 0 or more, got {wrong}")
    if out_path is not None:
        check_output(out_path, "--out"), check_output(wrong_png(out_path), "--out (its *-wrong.png)")
        if Path(out_path).suffix.lower() != ".png":
            raise ConfigError(f"--out {out_path}: the confusion matrix is written as PNG; give a file name ending in .png")
