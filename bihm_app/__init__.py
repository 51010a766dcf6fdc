"""bihm-app: Bidirectional Helmholtz Machines — engine, CLI (`bihm`), dashboard (`bihm-app`) and a Python API.

    import bihm_app as bihm
    model = bihm.train(data="adult", layers=(100, 70, 50, 25), epochs=5)
    print(bihm.evaluate(model, "test", K=1000).log_ptilde)

The API (``bihm_app/api.py``) and the engine classes are loaded on first use, so that importing the
package stays cheap for the command line.
"""

__version__ = "0.1.0"

_API = ("train", "load", "dataset", "evaluate", "sample", "inpaint", "log_z2", "Model", "Inpainting")
_ENGINE = {
    "BiHM": "bihm_app.engine.model",
    "ModelConfig": "bihm_app.engine.model",
    "TrainConfig": "bihm_app.engine.training",
    "Trainer": "bihm_app.engine.training",
    "GibbsConfig": "bihm_app.engine.gibbs",
    "SamplingConfig": "bihm_app.runner.pictures",
}

__all__ = ["__version__", *_API, *_ENGINE]


def __getattr__(name: str):
    import importlib

    if name in _API:
        return getattr(importlib.import_module("bihm_app.api"), name)
    if name in _ENGINE:
        return getattr(importlib.import_module(_ENGINE[name]), name)
    raise AttributeError(f"module 'bihm_app' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
