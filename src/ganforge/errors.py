"""Errors a user can fix. The CLI prints these as one line and exits non-zero; anything else is a bug."""


class GanforgeError(Exception):
    """Base class: the message names the problem and how to fix it."""


class ConfigError(GanforgeError):
    """A setting is invalid (unknown name, number out of range, clashing options)."""


class DataError(GanforgeError):
    """A dataset cannot be found or read."""


class CheckpointError(GanforgeError):
    """A checkpoint is missing, unsafe to load, or does not fit the model."""
