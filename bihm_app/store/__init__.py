"""Run folders, HDF5 checkpoints and live metrics files."""

from bihm_app._exports import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "bihm_app.store.runs": ["RunFolder", "RunSummary", "runs_root", "new_run", "open_run", "resolve_checkpoint", "list_runs"],
        "bihm_app.store.checkpoint": ["Checkpoint", "save_checkpoint", "load_checkpoint", "verify_checkpoint", "read_meta"],
        "bihm_app.store.metrics": ["MetricsWriter", "MetricsReader", "read_run_metrics"],
        "bihm_app.store.models": ["load_model"],
    },
)
