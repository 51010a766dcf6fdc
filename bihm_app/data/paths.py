"""Where data lives: the embedded assets shipped with the package, and the user's data folder."""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path

#: Environment variable that points the loader at another assets folder (tests, packagers).
ASSETS_ENV = "BIHM_ASSETS_DIR"
#: The file that marks a folder as a bihm assets folder.
ASSETS_MANIFEST = "manifest.json"


def data_home() -> Path:
    """The folder for fetched and imported data sets: `$BIHM_HOME/data`, else the platform data dir."""
    home = os.environ.get("BIHM_HOME")
    if home:
        return Path(home) / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir("bihm", appauthor=False)) / "data"


def asset_candidates() -> list[Path]:
    """Folders searched for the embedded assets, in order.

    1. ``$BIHM_ASSETS_DIR`` when set (and then only it);
    2. ``bihm_app/assets`` inside the installed package (a wheel that ships them as package data);
    3. ``<repo>/assets`` next to the package (a source checkout or an editable install);
    4. ``<prefix>/share/bihm-app/assets`` (a wheel that ships them as data files; the
       ``[tool.setuptools.data-files]`` entry in pyproject.toml), then the same under the user
       base (``pip install --user``).
    """
    override = os.environ.get(ASSETS_ENV)
    if override:
        return [Path(override)]
    package_dir = Path(__file__).resolve().parent.parent  # .../bihm_app
    return [
        package_dir / "assets",
        package_dir.parent / "assets",
        Path(sys.prefix) / "share" / "bihm-app" / "assets",
        Path(site.getuserbase()) / "share" / "bihm-app" / "assets",
    ]


def assets_dir() -> Path | None:
    """The first candidate folder that holds an assets manifest, or None when none does."""
    for folder in asset_candidates():
        if (folder / ASSETS_MANIFEST).is_file():
            return folder
    return None
