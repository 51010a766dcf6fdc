"""Dashboard screens (one per file)."""

__all__: list[str] = []
