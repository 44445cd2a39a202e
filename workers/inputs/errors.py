"""The error every input reader raises: a reason in words for the user."""


class InvalidInput(Exception):
    """The file cannot be converted; the message says why."""
