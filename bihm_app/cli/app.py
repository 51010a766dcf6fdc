"""The `bihm` command line: a thin Typer layer over engine, data, store and render.

Commands import torch and the heavy layers lazily, inside the command, so `bihm --help`,
`--version` and shell completion stay fast.
"""

from __future__ import annotations

import signal
import sys


def _interrupted_at_start(signum, frame) -> None:
    """Ctrl-C while the commands are still being imported (about a second; nothing started, nothing
    to clean up): one line and exit 130, not a KeyboardInterrupt traceback."""
    import os

    try:
        sys.stderr.write("bihm: interrupted before the command started\n")
    except (OSError, ValueError):
        pass
    os._exit(130)


try:
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # left alone where ignored (`cmd &`)
        signal.signal(signal.SIGINT, _interrupted_at_start)
except ValueError:  # imported outside the main thread: no handlers there
    pass

from typing import Annotated, Optional  # noqa: E402

import typer  # noqa: E402

from bihm_app import __version__  # noqa: E402

app = typer.Typer(
    name="bihm",
    help="Train, evaluate, sample and inspect Bidirectional Helmholtz Machines.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bihm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    """Bidirectional Helmholtz Machines (Bornschein et al., 2016) — train, evaluate, sample, compare."""


def _register() -> None:
    # Each command module adds its commands (or a sub-app) to `app`.
    from bihm_app.cli import eval_cmd, train_cmd

    app.command("train")(train_cmd.train)
    app.command("eval")(eval_cmd.eval_)
    app.command("logz")(eval_cmd.logz)
    from bihm_app.cli import ckpt_cmd; app.add_typer(ckpt_cmd.app, name="ckpt")  # noqa: E702
    from bihm_app.cli import runs_cmd; app.add_typer(runs_cmd.app, name="runs")  # noqa: E702
    from bihm_app.cli import data_cmd; app.add_typer(data_cmd.app, name="data")  # noqa: E702
    from bihm_app.cli import sample_cmd

    app.command("sample")(sample_cmd.sample)
    app.command("inpaint")(sample_cmd.inpaint)
    app.command("layers")(sample_cmd.layers)
    from bihm_app.cli import repro_cmd; app.add_typer(repro_cmd.app, name="repro")  # noqa: E702
    from bihm_app.cli import report_cmd; app.command("report")(report_cmd.report)  # noqa: E702
    from bihm_app.cli import classify_cmd

    app.command("classify")(classify_cmd.classify)


_register()
if signal.getsignal(signal.SIGINT) is _interrupted_at_start:  # commands raise KeyboardInterrupt again
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _terminated(signum, frame) -> None:
    """SIGTERM outside training (which saves and stops on its own handler): one line and exit 143,
    unwinding so that temporary files and staging folders are removed on the way out."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
    try:
        sys.stderr.write("bihm: terminated (SIGTERM)\n")
    except (OSError, ValueError):  # stderr a pipe whose reader was stopped too (`| tee`): the exit code says it
        pass
    raise SystemExit(143)


def main() -> None:
    signal.signal(signal.SIGTERM, _terminated)
    app()


if __name__ == "__main__":
    main()
