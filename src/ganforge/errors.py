"""Errors a user can fix. The CLI prints these as one line and exits non-zero; anything else is a bug."""


class GanforgeError(Exception):
    """Base class: the message names the problem and how to fix it."""


class ConfigError(GanforgeError):
    """A setting is invalid (unknown name, number out of range, clashing options)."""


class DataError(GanforgeError):
    """A dataset cannot be found or read."""


class CheckpointError(GanforgeError):
    """A checkpoint is missing, unsafe to load, or does not fit the model."""


class TrainingStopped(GanforgeError):
    """Training stopped before its last step (a signal, divergence, a failed write); the run is safe
    up to its last checkpoint and the message says how to continue. `exit_code` is what the CLI returns:
    128 + the signal number for SIGINT / SIGTERM (130 / 143), 2 otherwise."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
