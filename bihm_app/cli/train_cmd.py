"""`bihm train`: start or resume a training run, with a Rich progress bar and per-epoch lines."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from bihm_app.cli.common import Threads, as_count, cli_errors, err, out, runs_root
from bihm_app.errors import ConfigError


@cli_errors
def train(
    data: Annotated[str, typer.Option("--data", "-d", help="Data set name (see `bihm data list`).")] = "bmnist",
    layers: Annotated[str, typer.Option(help="Latent layer sizes bottom-up, e.g. 200,200, or the preset paper12.")] = "paper12",
    method: Annotated[str, typer.Option(help="bihm (Algorithm 1) or rws (reweighted wake-sleep baseline).")] = "bihm",
    k: Annotated[int, typer.Option("-K", "--samples", help="Importance samples per data point.")] = 10,
    batch: Annotated[int, typer.Option(help="Minibatch size.")] = 100,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    l1: Annotated[float, typer.Option(help="L1 penalty λ on all weights, added once per minibatch as in the authors' code (λ/B per data point).")] = 1e-3,
    l1_per: Annotated[str, typer.Option("--l1-per", help="batch: λ once per minibatch (the authors'); point: λ per data point (bihm-app 0.1, 100× stronger).")] = "batch",
    baseline: Annotated[bool, typer.Option(help="Use the (w − 1/K) baseline for the q-updates.")] = True,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs (default 1000; early stopping usually ends first).")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Stop after this many epochs without validation improvement (0: never; default 10).")] = None,
    valid_k: Annotated[int, typer.Option("--valid-k", help="K for the per-epoch validation estimate.")] = 10,
    valid_max: Annotated[int, typer.Option("--valid-max", help="Validate on at most this many points (0: all).")] = 0,
    z_samples: Annotated[float, typer.Option("--z-samples", help="Samples for the per-epoch 2 log Z estimate (0: off).")] = 1e5,
    z_every: Annotated[int, typer.Option("--z-every", help="Estimate 2 log Z every N epochs.")] = 1,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:N or mps (default auto; resume: as stored).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (data order, initialisation, samples).")] = 0,
    name: Annotated[Optional[str], typer.Option(help="Run name (default: <data>-<architecture>-<MMDD><letter>, e.g. bmnist-paper12-1126a).")] = None,
    labels: Annotated[int, typer.Option("--labels", help="Semi-supervised (thesis ch. 4): N labelled training points, balanced over the classes; the rest unlabelled (0: unsupervised).")] = 0,
    gamma: Annotated[float, typer.Option(help="Semi-supervised: labelled points maximise log B̃ − γ log Ã (4.7), γ in [−1, 1].")] = 0.0,
    label_proposal: Annotated[str, typer.Option("--label-proposal", help="Semi-supervised: label proposal of Ã: q (4.4), mixed (4.11) or sum (y summed exactly).")] = "q",
    label_at: Annotated[str, typer.Option("--label-at", help="Semi-supervised: the label on top of the net (4.2) or at the bottom, off h_1 and x (4.6).")] = "top",
    labelled_per_batch: Annotated[int, typer.Option("--labelled-per-batch", help="Semi-supervised: labelled points in each minibatch (the authors' code: 50 of 100).")] = 50,
    label_l2: Annotated[float, typer.Option("--label-l2", help="Semi-supervised: L2 penalty (λ/2)‖V‖² on the label layer q(y|·)'s weights per labelled point (0: off, as in the thesis).")] = 0.0,
    label_l2_x: Annotated[Optional[float], typer.Option("--label-l2-x", help="Semi-supervised, label at the bottom: the L2 penalty of the pixels' weights V_x, if not --label-l2's.")] = None,
    label_input: Annotated[str, typer.Option("--label-input", help="Semi-supervised, label at the bottom: q(y | x, h_1) reads x,h1 (4.6) or h1 only (the learned code).")] = "x,h1",
    resume: Annotated[Optional[str], typer.Option(help="Resume this run (name or folder) from its latest checkpoint.")] = None,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder (default $BIHM_HOME/runs).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, only the final line.")] = False,
    threads: Threads = "auto",
    precision: Annotated[str, typer.Option(help="Matrix products in fp32 or bf16 (fp32 master weights and log-probability sums; needs bf16 hardware to pay off).")] = "fp32",
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph/--no-cuda-graph", help="On a CUDA GPU, replay each update from a CUDA graph (the 12-layer net on an H100: 9.5× plain PyTorch, 4.1× the eager engine; benchmarks/RESULTS.md); ignored on the CPU.")] = True,
) -> None:
    """Train a BiHM (Algorithm 1) on a data set; Ctrl-C saves and prints how to resume.

    The option defaults equal ``runner/configs.py``'s (checked by tests/runner/test_configs.py;
    written out here so that `bihm` starts without importing torch)."""
    from bihm_app.cli.train_report import RichReporter

    root = runs_root(runs_dir)
    reporter = RichReporter(err, quiet=quiet or int(os.environ.get("RANK", "0")) != 0)
    z_samples = as_count(z_samples, "--z-samples")
    try:
        semi = _semi_spec(labels, resume, label_at, label_proposal, gamma, labelled_per_batch, label_l2, label_input, label_l2_x)
        run, reason = _train(root, reporter, resume, data, layers, method, k, batch, lr, l1, l1_per, baseline, epochs,
                             patience, valid_k, valid_max, z_samples, z_every, device, seed, name, semi, threads,
                             precision, cuda_graph)  # fmt: skip
    except KeyboardInterrupt:
        reporter.finish("interrupted")
        err.print("[yellow]interrupted: the run's last checkpoint, if it saved one, is kept; `bihm runs list` shows "
                  "the run, `bihm train --resume RUN` continues it[/]")  # fmt: skip
        raise typer.Exit(130) from None
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 reports
        _report_end(run, reason, reporter)


def _semi_spec(labels, resume, label_at, proposal, gamma, per_batch, l2, label_input, l2_x):
    """The semi-supervised settings of a new run (None: unsupervised, or a resume: the run's own)."""
    if labels < 0:
        raise ConfigError(f"--labels must be at least 1 (or 0 for unsupervised training), got {labels}")
    from bihm_app.runner.semisup_loop import SemiSpec

    if not labels and not resume:  # label options without --labels were ignored, silently
        options = {"--label-at": ("placement", label_at), "--label-proposal": ("proposal", proposal),
                   "--gamma": ("gamma", gamma), "--labelled-per-batch": ("labelled_per_batch", per_batch),
                   "--label-l2": ("label_l2", l2), "--label-input": ("label_input", label_input),
                   "--label-l2-x": ("label_l2_x", l2_x)}  # fmt: skip
        defaults = {f.name: f.default for f in dataclasses.fields(SemiSpec)}
        given = [opt for opt, (field, value) in options.items() if value != defaults[field]]
        if given:
            raise ConfigError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for semi-supervised training: "
                              "add --labels N (labelled training points)")  # fmt: skip
    if not labels or resume:
        return None
    return SemiSpec(labels, label_at, proposal, gamma, per_batch, l2, label_input, l2_x)


def _saved_number(status: dict, key: str, seen: float | None) -> float | None:
    """status.json's ``key`` ("best_valid": validation log p̃*, as `bihm runs list` shows it;
    "best_error" of a semi-supervised run), which the training loop wrote as it ended: that of the
    epoch best.h5 holds (for an RWS run the epoch of the best log p), over every attempt — else
    ``seen``, that of the epochs printed here."""
    v = status.get(key)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else seen


def _report_end(run, reason: str, reporter) -> None:
    """The final line (and how to resume after a signal, exit 130/143)."""
    from bihm_app.cli.train_report import wrap_fields
    from bihm_app.errors import BihmError

    try:
        status = run.read_status()
    except BihmError:
        status = {}
    best = _saved_number(status, "best_valid", reporter.best)
    best_txt = f"best valid log p̃* {best:.2f}" if best is not None and math.isfinite(best) else ""
    error = _saved_number(status, "best_error", reporter.best_error) if reporter.best_error is not None else None
    if error is not None:
        best_txt = f"best valid error {100 * error:.2f} %"
    fields = [f"run [bold]{run.name}[/] — {reason}" + ("," if best_txt else ";")] + ([best_txt + ";"] if best_txt else [])
    fields.append(f"checkpoint {run.checkpoint_path}")
    out.print(wrap_fields(fields, out.width, gap=" "), highlight=False)  # a line breaks between fields, not in "log p̃*"
    if reason.startswith("signal"):
        out.print(f"resume with: [bold]bihm train --resume {run.name}[/]", highlight=False)
        raise typer.Exit(130 if "SIGINT" in reason else 143)


def _train(root, reporter, resume, data, layers, method, k, batch, lr, l1, l1_per, baseline, epochs, patience, valid_k,
           valid_max, z_samples, z_every, device, seed, name, semi=None, threads="auto", precision="fp32", cuda_graph=True):  # fmt: skip
    from bihm_app.runner.configs import layer_sizes, train_config
    from bihm_app.runner.preflight import check_new_run
    from bihm_app.runner.threads import check_option
    from bihm_app.runner.train_loop import RunSpec, resume_run, start_run

    threads = check_option(threads)  # before a run folder exists
    if resume:
        return resume_run(root, resume, reporter, {"epochs": epochs, "patience": patience, "device": device, "threads": threads})
    check_new_run(root, name, data)  # the dashboard's form runs the same checks before it launches
    cfg = train_config(method=method, K=k, batch_size=batch, lr=lr, l1=l1, l1_per=l1_per, baseline=baseline, epochs=epochs,
                       patience=patience, valid_K=valid_k, valid_max=valid_max, z_samples=int(z_samples), z_every=z_every,
                       seed=seed, precision=precision, cuda_graph=cuda_graph)  # fmt: skip
    spec = RunSpec(data=data, layers=layer_sizes(layers), train=cfg, device=device or "auto", name=name, semisup=semi, threads=threads)
    return start_run(root, spec, reporter)
