"""Errors that the command line turns into one clear message instead of a traceback."""


class FusionSegError(Exception):
    """Base class: anything the user can fix (bad input, bad config, bad checkpoint)."""


class InputError(FusionSegError):
    """An input file or folder is missing, unreadable, or inconsistent. The message names it."""


class ConfigError(FusionSegError):
    """The configuration is invalid. The message names the offending key."""
