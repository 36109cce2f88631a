"""Errors that the CLI turns into a one-line message and a non-zero exit, without a traceback."""


class ElmokitError(Exception):
    """A user-facing error: the message names the file, the line, what is wrong and what to do."""


class ConfigError(ElmokitError):
    """A config file or override is invalid."""


class CorpusError(ElmokitError):
    """A corpus file is missing, empty or malformed."""


class CheckpointError(ElmokitError):
    """A checkpoint or model directory is missing, corrupt, truncated or does not fit."""
