"""Errors a user sees as one line. The CLI maps them to exit codes: 2 usage, 1 runtime."""


class SSLBenchError(Exception):
    """Base class: the message is shown to the user as is, without a traceback."""

    exit_code = 1
    recorded = False  # True once a ``failed`` record of this error is in the registry


class UsageError(SSLBenchError):
    """Bad input from the user: unknown names, invalid values, unreadable config files."""

    exit_code = 2


class DataError(SSLBenchError):
    """A dataset is missing or corrupt; the message says which files to put where."""

    exit_code = 1


class TrainingError(SSLBenchError):
    """A run could not go on (non-finite loss, out of memory)."""

    exit_code = 1


class Interrupted(SSLBenchError):
    """Ctrl-C during training: a checkpoint was saved; exit 130, as a shell reports SIGINT."""

    exit_code = 130
