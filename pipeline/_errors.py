"""Exceptions raised by the pipeline framework.

Every error derives from `PipelineError`, and each specific error also inherits the builtin
exception that says what happened (``TypeError``, ``ValueError``, ``AttributeError``, ...), so
callers that only know the builtins still catch them.

The quantum-execution errors form a small taxonomy that tells an executor what to do:

- `NoWorkFound`: the quantum had nothing to do; skip it and count it as done.
- `UpstreamFailureNoWorkFound`: nothing to do because an upstream quantum failed.
- `RepeatableQuantumError` (and `AlgorithmError`): fail, never retry, the same inputs fail again.
- `InvalidQuantumError`: the quantum itself is malformed (a logic error in the graph or task).
- anything else: may be retried.
"""

from __future__ import annotations

__all__ = [
    "AlgorithmError",
    "ContractError",
    "DuplicateRegistrationError",
    "FieldValidationError",
    "FrozenConfigError",
    "InitOutputConflictError",
    "InvalidQuantumError",
    "LocatedError",
    "NoWorkFound",
    "PipelineDefinitionError",
    "PipelineError",
    "QuantumTimeoutError",
    "RepeatableQuantumError",
    "UnknownConfigFieldError",
    "UpstreamFailureNoWorkFound",
]


class PipelineError(Exception):
    """Root of every exception raised by `pipeline`."""


class LocatedError(PipelineError):
    """A `PipelineError` that may name the file and line it came from.

    Parameters
    ----------
    message : `str`
        What went wrong, naming the offending thing.
    filename : `str`, optional
        File the offending text came from; `None` if it did not come from a file.
    line : `int`, optional
        1-based line number in ``filename``; `None` if unknown.
    """

    def __init__(self, message: str, *, filename: str | None = None, line: int | None = None):
        self.message = message
        self.filename = filename
        self.line = line
        super().__init__(self._format())

    def _format(self) -> str:
        if self.filename is None:
            return self.message
        where = self.filename if self.line is None else f"{self.filename}, line {self.line}"
        return f"{self.message} ({where})"

    def located(self, filename: str | None, line: int | None = None) -> LocatedError:
        """Return a copy of this error that names ``filename`` and ``line``.

        Parameters
        ----------
        filename : `str` or `None`
            File the offending text came from.
        line : `int`, optional
            1-based line number.

        Returns
        -------
        error : `LocatedError`
            A new error of the same type; raise it ``from`` this one.
        """
        new = type(self).__new__(type(self))
        LocatedError.__init__(new, self.message, filename=filename, line=line)
        return new

    def __reduce__(self):
        return (_rebuild_located, (type(self), self.message, self.filename, self.line))


def _rebuild_located(cls, message, filename, line):
    new = cls.__new__(cls)
    LocatedError.__init__(new, message, filename=filename, line=line)
    return new


# --- configuration -------------------------------------------------------------------------


class FieldValidationError(LocatedError, TypeError, ValueError):
    """A config field was given a value of the wrong type, or one that fails validation.

    The message names the config class, the dotted field path and the value.
    """


class UnknownConfigFieldError(LocatedError, AttributeError):
    """A config has no field of that name; the message suggests the nearest field name."""


class FrozenConfigError(PipelineError, AttributeError):
    """A frozen config (or one of its lists or dicts) was modified."""


class DuplicateRegistrationError(PipelineError, ValueError):
    """A name is already registered in a config `Registry`; entries are never overwritten."""


# --- pipeline definitions ------------------------------------------------------------------


class PipelineDefinitionError(LocatedError, ValueError):
    """A pipeline (YAML, connections, task wiring) is malformed.

    ``filename`` and ``line``, when known, are part of the message.
    """


class ContractError(PipelineError, ValueError):
    """A pipeline contract (a config invariant across tasks) does not hold."""


# --- quantum execution ---------------------------------------------------------------------


class NoWorkFound(PipelineError):  # noqa: N818  (LSST's published name)
    """The quantum had nothing to do; the executor skips it and counts it as done."""


class UpstreamFailureNoWorkFound(NoWorkFound):  # noqa: N818  (LSST's published name)
    """Nothing to do because an upstream quantum failed; not itself a failure."""


class RepeatableQuantumError(PipelineError, RuntimeError):
    """The quantum failed in a way that would repeat on the same inputs; never retried."""

    EXIT_CODE = 20


class QuantumTimeoutError(RepeatableQuantumError):
    """The quantum ran longer than ``pipetask run --timeout``; never retried.

    The executor raises it inside the quantum's thread, so it has no arguments there: the
    message is the ``timeout_message`` of the thread the quantum runs in.
    """

    def __init__(self, *args: object) -> None:
        import threading

        if not args:
            args = (
                getattr(threading.current_thread(), "timeout_message", "")
                or "the quantum ran longer than --timeout",
            )
        super().__init__(*args)


class AlgorithmError(RepeatableQuantumError):
    """An algorithm failed on these data (e.g. too few PSF stars); never retried."""


class InitOutputConflictError(PipelineError, RuntimeError):
    """The output run already holds a different init-output than this execution makes.

    What is there (registered, or a file no registry row owns) is left as it is and the
    execution does not start.
    """


class InvalidQuantumError(PipelineError, RuntimeError):
    """The quantum is malformed (a graph-building or task logic error); never retried."""

    EXIT_CODE = 21
