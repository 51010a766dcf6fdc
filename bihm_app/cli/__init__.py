"""The `bihm` command line: Typer commands that parse, call the use-case layer (`bihm_app.runner`) and render.

No public Python names: scripts use `bihm_app` (the API in `bihm_app/api.py`)."""

__all__: list[str] = []
