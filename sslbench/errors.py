"""Errors a user sees as one line. The CLI maps them to exit codes: 2 usage, 1 runtime,
130 Ctrl-C, 143 SIGTERM (see docs/reliability.md)."""


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


class Stopped(SSLBenchError):
    """Training stopped on a signal at a step boundary; the checkpoint is saved, no record is
    written, and ``--resume`` continues exactly. Not a failure of the run: a matrix stops too."""


class Interrupted(Stopped):
    """Ctrl-C during training: a checkpoint was saved; exit 130, as a shell reports SIGINT."""

    exit_code = 130


class Preempted(Stopped):
    """SIGTERM during training (Slurm, Kubernetes or torchrun stopping the job): a checkpoint
    was saved; exit 143, as a shell reports SIGTERM, so a job script can requeue on it."""

    exit_code = 143


class Terminated(BaseException):
    """SIGTERM outside the training loop: unwinds like Ctrl-C (temp files removed, nothing
    recorded), and the CLI exits 143. A ``BaseException``, so no ``except Exception`` turns
    it into a failed run."""
