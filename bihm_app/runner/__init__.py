"""The use-case layer under both front-ends (``bihm`` and ``bihm-app``) and the Python API:
training runs, evaluation, pictures, reports and comparisons, with every default and name."""

from bihm_app._exports import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "bihm_app.runner.configs": ["TRAIN", "train_config", "layer_sizes"],
        "bihm_app.runner.models": ["LoadedModel", "load_model", "fresh_model"],
        "bihm_app.runner.pictures": ["SamplingConfig", "SAMPLING", "INPAINTING", "sample_pictures", "layer_pictures", "inpaint_panel"],
        "bihm_app.runner.seeds": ["derive_seed"],
        "bihm_app.runner.train_loop": ["RunSpec", "Reporter", "start_run", "resume_run"],
        "bihm_app.runner.evaluation": ["evaluate_target", "estimate_z2"],
        "bihm_app.runner.compare": ["at_best_epoch"],
        "bihm_app.runner.naming": ["default_run_name"],
        "bihm_app.runner.sample_files": ["save_pictures", "load_samples"],
    },
)
