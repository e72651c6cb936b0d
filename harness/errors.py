"""One error hierarchy: every user-facing error derives from HarnessError.

The CLI turns a HarnessError into its message and exit code 2, with no traceback: the message
itself names the file or argument, the value received and the fix.
"""

from __future__ import annotations


class HarnessError(Exception):
    """A user error: bad input, a refused action. Exit code 2 at the CLI."""

    exit_code = 2


class DeclarationError(HarnessError, ValueError):
    """A hypothesis declaration is invalid.

    `field` is the declaration field (dotted, e.g. ``prediction.alpha``), `value` what was
    received and `allowed` a human description of what is accepted. `location` (``file:line``)
    is filled in by :mod:`harness.collect` when the declaration came from a file.
    """

    def __init__(self, field: str, value: object, allowed: str, *, what: str | None = None, choices=None):
        self.field = field
        self.value = value
        self.allowed = allowed
        if choices is not None and isinstance(value, str):  # a typo: `vea` -> "did you mean 'vae'?"
            import difflib

            close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)
            if close:
                self.allowed = f"did you mean {close[0]!r}? ({allowed})"
        self.what = what or f"invalid value for {field!r}"
        self.location: str | None = None
        super().__init__(self._format())

    def _format(self) -> str:
        head = f"{self.location}: " if self.location else ""
        return f"{head}{self.what}: {self.field} = {self.value!r}\n  hint: {self.allowed}"

    def at(self, location: str) -> DeclarationError:
        self.location = location
        self.args = (self._format(),)
        return self


class CollectionError(HarnessError):
    """A hypothesis file could not be found or imported (the pytest 'collection error')."""


class StoreError(HarnessError):
    """The tracking store refused an action (version mismatch, missing study, ...)."""


class ClaimedError(HarnessError):
    """Another process holds the claim on the runs this process was asked to train."""


class RunError(HarnessError):
    """Training a block raised (typically in the user's model code); its runs were marked KILLED."""


class Interrupted(HarnessError):
    """SIGTERM / SIGINT reached a study: its runs in training were marked KILLED.

    Exit code 128 + the signal number (143 for SIGTERM, 130 for SIGINT), as a shell reports a
    process ended by that signal.
    """

    def __init__(self, message: str = "", signum: int = 15):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum

    def __reduce__(self):  # crosses the process-pool boundary
        return (type(self), (str(self), self.signum))


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


# What the environment does to a store, as sqlite and the OS say it, and how to fix it.
_ENVIRONMENT = (
    (("database or disk is full", "no space left on device"),
     "no space left on the device holding {where}",
     "free space (or point --store at a larger disk), then run the same command again: ended runs are kept"),
    (("attempt to write a readonly database", "read-only file system", "readonly database"),
     "{where} is read-only",
     "make the store directory writable, or point --store at a writable directory"),
    (("file is not a database", "database disk image is malformed", "not an sqlite database"),
     "{where} is not a readable MLflow sqlite database (malformed or another kind of file)",
     "point --store at the store directory (or its mlflow.db), or restore the file from a backup"),
    (("unable to open database file",),
     "{where} cannot be opened",
     "check that the store directory exists and is writable, or point --store elsewhere"),
)


def translate(exc: BaseException, where: str = "the tracking store") -> HarnessError | None:
    """The user error behind an environmental failure (full disk, read-only or garbled store,
    permission), or None when ``exc`` is not one: then it is a bug and keeps its traceback."""
    import errno

    if isinstance(exc, HarnessError):
        return exc
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            target = e.filename or where
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                what, fix = _ENVIRONMENT[0][1:]
            else:
                what, fix = "{where} is not writable (" + (e.strerror or "permission denied") + ")", _ENVIRONMENT[1][2]
            return StoreError(f"{what.format(where=target)}\n  hint: {fix}")
        text = str(e).lower()
        for needles, what, fix in _ENVIRONMENT:
            if any(n in text for n in needles):
                return StoreError(f"{what.format(where=where)}: {_first_line(e)}\n  hint: {fix}")
    return None


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return (s[0] if s else type(e).__name__)[:300]


def describe(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` for a located error (empty-message safe)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__
