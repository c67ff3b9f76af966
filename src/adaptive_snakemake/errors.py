"""Errors that carry a message meant for the user, not a traceback."""


class ConfigError(ValueError):
    """learners.yaml (or config.yaml) is invalid. The message names file, sweep and key."""


class LauncherError(RuntimeError):
    """The job was started with a different number of MPI ranks than it asked for."""
