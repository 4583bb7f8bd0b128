"""User-facing errors.

Anything raised as :class:`SpeechLMError` (or a subclass) is a problem with the user's input or environment.
The CLI prints its message on one line and exits non-zero, with no traceback unless ``--debug`` is given.
"""


class SpeechLMError(Exception):
    """A bad input or an unmet requirement, reported to the user in one line."""


class AudioError(SpeechLMError):
    """Audio that cannot be read, or that fails validation."""


class ManifestError(SpeechLMError):
    """A manifest line that does not follow the JSONL contract."""


class CheckpointError(SpeechLMError):
    """A checkpoint directory that is missing files, or was made by another model."""


class MissingDependencyError(SpeechLMError):
    """An optional package or system program that a command needs is not installed."""
