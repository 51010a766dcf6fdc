"""Training updates per second, engine against plain autograd — now part of the suite:
``python benchmarks/run.py --only train`` (this wrapper passes its arguments on)."""

import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":
    run = Path(__file__).with_name("run.py")
    sys.exit(subprocess.call([sys.executable, str(run), "--only", "train", *sys.argv[1:]]))
