"""Dashboard widgets (one per file)."""

__all__: list[str] = []
