"""Lazy package exports: ``__all__`` names that load their module on first use, so that importing a
package (``bihm_app.store`` pulls in h5py, ``bihm_app.runner`` torch) stays cheap until needed."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, list[str]]):
    """(``__all__``, module ``__getattr__``) for ``package`` from {module: [names]}."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return list(where), __getattr__
