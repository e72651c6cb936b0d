"""Credentials in URIs: never shown, stored or logged, never put on a child's argv.

One function hides a URI's password wherever a URI is shown (messages, `run`'s next command,
reports, MLflow tags): :func:`redact`. A command shown for the user to rerun keeps ``***`` in
place of the password, and ``***`` given back is read as "from the environment" (:func:`from_environment`):
``$PGPASSWORD`` (or a pgpass file) for PostgreSQL, ``$MLFLOW_TRACKING_PASSWORD`` for an MLflow
server. A child process (`harness ui`'s MLflow server) gets the password in its environment,
never on its argv (:func:`for_child`): ``/proc/<pid>/cmdline`` is readable by every user,
``/proc/<pid>/environ`` only by the process' owner.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

PLACEHOLDER = "***"
# scheme://user:password@ anywhere in free text (an exception's message, a log line)
_IN_TEXT = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*):([^\s@'\"]*)@")


def redact(uri: str) -> str:
    """``uri`` with its password replaced by ``***``; any other text is returned unchanged.

    Example::

        redact("postgresql://u:secret@db:5432/runs")   # 'postgresql://u:***@db:5432/runs'
    """
    try:
        u = urlsplit(uri)
        password = u.password
    except ValueError:  # not a URI (a bad port): hide what looks like a password anyway
        return redact_text(uri)
    if password is None:
        return uri
    user, _, host = u.netloc.rpartition("@")
    return urlunsplit(u._replace(netloc=f"{user.split(':', 1)[0]}:{PLACEHOLDER}@{host}"))


def redact_text(text: str) -> str:
    """Every ``scheme://user:password@`` in free text with the password replaced by ``***``."""
    return _IN_TEXT.sub(lambda m: f"{m.group(1)}:{PLACEHOLDER}@", text)


def password_variable(uri: str) -> str | None:
    """The environment variable a password-less ``uri`` takes its password from."""
    if is_postgres(uri):
        return "PGPASSWORD"
    if uri.startswith(("http://", "https://")):
        return "MLFLOW_TRACKING_PASSWORD"
    return None


def shown(uri: str) -> str:
    """``uri`` for a command the user may run again: redacted, plus where the password comes from.

    Example::

        shown("postgresql://u:secret@db/runs")   # "postgresql://u:***@db/runs  (password from $PGPASSWORD)"
    """
    import shlex

    red = redact(uri)
    var = password_variable(uri)
    if red == uri or var is None:
        return shlex.quote(uri)
    return f"{shlex.quote(red)}  (the password from ${var})"


def from_environment(uri: str, given: str = "--store") -> str:
    """Read a ``***`` password as "from the environment": the URI without it, for the client
    library to take the password from ``$PGPASSWORD`` (libpq) or ``$MLFLOW_TRACKING_PASSWORD``
    (MLflow). A missing variable is a HarnessError naming it."""
    from harness.errors import HarnessError

    try:
        u = urlsplit(uri)
        password = u.password
    except ValueError:
        return uri
    if password != PLACEHOLDER:
        return uri
    var = password_variable(uri)
    if is_postgres(uri):
        pgpass = Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass")
        if not os.environ.get(var) and not pgpass.is_file():
            raise HarnessError(f"{given} {uri}: the password {PLACEHOLDER} stands for ${var}, which is not set\n"
                               f"  hint: export {var}=... (or write a ~/.pgpass file), then run the same command")
    elif var is not None:
        if not os.environ.get(var):
            raise HarnessError(f"{given} {uri}: the password {PLACEHOLDER} stands for ${var}, which is not set\n"
                               f"  hint: export MLFLOW_TRACKING_USERNAME=... {var}=..., then run the same command")
        os.environ.setdefault("MLFLOW_TRACKING_USERNAME", unquote(u.username or ""))
        user, _, host = u.netloc.rpartition("@")
        return urlunsplit(u._replace(netloc=host))
    else:
        return uri
    user, _, host = u.netloc.rpartition("@")
    return urlunsplit(u._replace(netloc=f"{user.split(':', 1)[0]}@{host}"))


def for_child(uri: str) -> tuple[str, dict[str, str]]:
    """(``uri`` without its password, the environment variables that carry it) for a child
    process' argv and environment.

    Example::

        uri, env = for_child("postgresql://u:secret@db/runs")
        # uri == "postgresql://u@db/runs", env == {"PGPASSWORD": "secret"}
    """
    try:
        u = urlsplit(uri)
        password = u.password
    except ValueError:
        return uri, {}
    var = password_variable(uri)
    if password is None or var is None:
        return uri, {}
    user, _, host = u.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    if is_postgres(uri):
        return urlunsplit(u._replace(netloc=f"{name}@{host}")), {var: unquote(password)}
    return urlunsplit(u._replace(netloc=host)), {"MLFLOW_TRACKING_USERNAME": unquote(name), var: unquote(password)}


def is_postgres(url: str | None) -> bool:
    return bool(url) and url.startswith(("postgresql://", "postgresql+", "postgres://"))
