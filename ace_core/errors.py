"""Error types raised by the core. Messages name the input (or file) and what is allowed."""


class AceStepError(Exception):
    """Base class for errors the user can act on."""


class CheckpointError(AceStepError):
    """A checkpoint file or folder is not what was expected (names the file and the problem)."""


class InputError(AceStepError, ValueError):
    """A user input is outside its allowed range (names the input and the range)."""
