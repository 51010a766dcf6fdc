"""Gibbs sweeps per second (Algorithm 2) against the sampler before the performance work — now part
of the suite: ``python benchmarks/run.py --only gibbs`` (this wrapper passes its arguments on)."""

import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":
    run = Path(__file__).with_name("run.py")
    sys.exit(subprocess.call([sys.executable, str(run), "--only", "gibbs", *sys.argv[1:]]))
