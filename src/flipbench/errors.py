"""Errors a user can fix: the CLI prints them as one line and exits with code 2."""


class FlipbenchError(Exception):
    """Bad input or an unusable environment; the message says what to do."""


class BackendFatalError(FlipbenchError):
    """The backend refused in a way that retrying cannot fix (bad key, unknown model…)."""
