"""The `bihm-app` dashboard (Textual): screens and widgets over the use-case layer (`bihm_app.runner`).

No public Python names: scripts use `bihm_app` (the API in `bihm_app/api.py`)."""

__all__: list[str] = []
