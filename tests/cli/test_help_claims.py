"""Speed claims in `bihm … --help` are the measured ones of benchmarks/RESULTS.md (rounded)."""

import re
from pathlib import Path

import typer

from bihm_app.cli.app import app

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md"


def _option_help(command: str, flag: str) -> str:
    cmd = typer.main.get_command(app).commands[command]
    (param,) = [p for p in cmd.params if flag in getattr(p, "opts", ())]
    return param.help


def test_cuda_graph_help_quotes_the_benchmark():
    """Catches the help of `bihm train --cuda-graph` claiming a speed-up the benchmark does not
    show (it said "5× on an H100" while RESULTS.md measured 9.53× plain and 4.12× the eager engine
    for the 12-layer net): every "N×" in it must be one of that row's ratios, rounded to 0.1, and
    both ratios must be there."""
    row = next(line for line in RESULTS.read_text(encoding="utf-8").splitlines() if line.startswith("| train paper12 "))
    measured = {round(float(v), 1) for v in re.findall(r"([\d.]+)×", row)}
    vs_plain = round(float(re.search(r"\*\*([\d.]+)×\*\*", row).group(1)), 1)
    vs_eager = round(float(re.search(r"graph/eager ([\d.]+)×", row).group(1)), 1)
    text = _option_help("train", "--cuda-graph")
    claims = [float(v) for v in re.findall(r"([\d.]+)×", text)]
    assert claims and all(c in measured for c in claims), (claims, measured)
    assert f"{vs_plain}× plain" in text and f"{vs_eager}× the eager engine" in text, text
