"""The small family of user-facing errors.

Every layer raises one of these with a one-line message that names the file or value at fault;
the CLI and the dashboard catch `BihmError` once at their edge and show the message, never a
traceback.
"""


class BihmError(Exception):
    """Base class: a problem the user can act on. ``str(err)`` is the one line shown."""


class ConfigError(BihmError):
    """An impossible option or configuration (layer spec, K < 1, unknown device …)."""


class DataError(BihmError):
    """A data set that is missing, corrupt, or not binary / of the wrong shape."""


class CheckpointError(BihmError):
    """A checkpoint or metrics file that is unreadable, corrupt, foreign or inconsistent."""


class RunError(BihmError):
    """A run folder that does not exist or cannot be used as asked."""


class TrainingDiverged(BihmError):
    """Training produced NaN/inf repeatedly even after rollbacks."""


class DiskFull(BihmError):
    """A write failed because the file system is full (or over quota); nothing written was lost."""
