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

    def __init__(self, field: str, value: object, allowed: str, *, what: str | None = None):
        self.field = field
        self.value = value
        self.allowed = allowed
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


class ModelError(HarnessError):
    """A user's model raised while training: reported at the line of their code, not ours."""
