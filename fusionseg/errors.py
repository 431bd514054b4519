"""Errors that the command line turns into one clear message instead of a traceback."""


class FusionSegError(Exception):
    """Base class: anything the user can fix (bad input, bad config, bad checkpoint)."""


class InputError(FusionSegError):
    """An input file or folder is missing, unreadable, or inconsistent. The message names it."""


class ConfigError(FusionSegError):
    """The configuration is invalid. The message names the offending key."""


class OutputError(FusionSegError):
    """An output cannot be written: the disk is full, or its folder is read-only or forbidden. The
    message names the output and the cause; nothing is left under its final or temporary name."""

    def __init__(self, path, cause: str) -> None:
        super().__init__(f"{path}: cannot write ({cause})")
        self.path, self.cause = path, cause
