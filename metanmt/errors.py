"""User-facing errors: the CLI prints their message and exits non-zero, without a traceback."""


class MetaNMTError(Exception):
    """A problem with the user's input (file, value, config) that the message explains."""
