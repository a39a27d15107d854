"""The MLflow tracking store a command writes to, checked once before any work: reachable, or usable.

Without the check, an unreachable tracking server costs MLflow's HTTP retries (about two minutes) after the
training, and an unusable sqlite path or a store migrated by a newer MLflow a traceback. Imports neither
MLflow nor the HTTP stack's heavier parts: commands run it before they start the trial-run helper or import
their libraries.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mbgd.core.config import redact

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow 3's own default store
PROBE_TIMEOUT_S = 5.0  # a server that has not answered by then is taken for unreachable
DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
# The newest schema revision of MLflow releases newer than the oldest mbgd allows, to name the release that
# migrated a store this MLflow cannot open (any other unknown revision: "a newer MLflow").
NEWER_SCHEMA_HEADS = {"f4a9b2c7d1e6": "3.18"}


class StoreUnavailable(Exception):
    """The tracking store cannot be reached or used; the message names it (password shown as ***)."""


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else MLflow's default store in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def require_tracking_store() -> str:
    """Check the store every command writes to and quiet MLflow's per-run links; returns its URI.

    MLflow prints "View run … / View experiment …" at the end of every run on a server; mbgd prints its own
    link once. The setting is inherited by the processes the command starts (trial-run helper, workers).
    """
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    uri = tracking_uri()
    check(uri)
    return uri


def check(uri: str) -> None:
    """Raise StoreUnavailable when the store at `uri` cannot be reached (a server or database) or used
    (sqlite).

    Other stores (databricks, …) are left to MLflow.
    """
    scheme = urlsplit(uri).scheme.split("+")[0]
    try:
        if scheme in ("http", "https"):
            _probe_server(uri)
        elif scheme == "sqlite":
            _check_sqlite_path(uri)
        elif scheme in DATABASE_PORTS:
            _probe_port(uri, DATABASE_PORTS[scheme])
    except (OSError, ValueError) as error:
        reason = " ".join(str(getattr(error, "reason", None) or error).split()) or type(error).__name__
        raise StoreUnavailable(
            f"cannot use the MLflow tracking store {redact(uri)} (MLFLOW_TRACKING_URI): {reason}"
        ) from None


def _probe_server(uri: str) -> None:
    """GET <server>/health, which an MLflow server answers 200. Another answer below 500 (401, 403: a proxy
    that wants credentials) lets MLflow go on, except 404: no MLflow server there. 5xx is a server MLflow
    would retry for minutes."""
    import http.client
    import ssl
    import urllib.error
    import urllib.request

    parts = urlsplit(uri)
    netloc = parts.netloc.rpartition("@")[2]  # credentials are not needed to reach it
    probe = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", ""))
    # Reachability only: a self-signed certificate that MLflow is told to accept must not fail the probe.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(probe, timeout=PROBE_TIMEOUT_S, context=context):
            return
    except urllib.error.HTTPError as error:
        if error.code == 404 or error.code >= 500:
            raise OSError(
                f"GET {probe} answered HTTP {error.code}: no MLflow tracking server there"
            ) from None
    except http.client.HTTPException as error:  # something answered, but not HTTP
        raise OSError(f"no HTTP server there ({type(error).__name__})") from None


def _probe_port(uri: str, default_port: int) -> None:
    """A database server: its port accepts a connection (a Unix-socket URL, without a host, is not probed)."""
    parts = urlsplit(uri)
    if not parts.hostname:
        return
    with socket.create_connection((parts.hostname, parts.port or default_port), timeout=PROBE_TIMEOUT_S):
        return


def _check_sqlite_path(uri: str) -> None:
    """The database file's folder exists or can be made (MLflow makes it), and the file or folder is
    writable."""
    path = uri.removeprefix("sqlite://").split("?")[0]
    if path.startswith("/"):
        path = path[1:]  # sqlite:///relative.db, sqlite:////absolute.db
    if not path or path == ":memory:":
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    target = path if os.path.exists(path) else folder
    if not os.access(target, os.R_OK | os.W_OK):
        raise PermissionError(f"{target} is not writable")
    if os.path.exists(path):
        _check_schema_known(path)


def _check_schema_known(path: str) -> None:
    """The store's schema revision is one the installed MLflow has a migration for: a store migrated by a
    newer MLflow is one this MLflow cannot open (it raises "out-of-date database schema" and suggests an
    upgrade that fails). Read with sqlite3 and the names of MLflow's migration files, without importing
    MLflow."""
    import contextlib
    import importlib.metadata
    import importlib.util
    import sqlite3

    # Read-only and immutable: no lock taken, no -wal or -shm file made beside a store in write-ahead mode.
    uri = f"{Path(path).absolute().as_uri()}?mode=ro&immutable=1"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone() or ("",)
    except sqlite3.Error:  # not a store yet (an empty file), not MLflow's, or not a file: MLflow says
        return
    spec = importlib.util.find_spec("mlflow")
    if not revision or spec is None or not spec.submodule_search_locations:
        return
    migrations = os.path.join(spec.submodule_search_locations[0], "store", "db_migrations", "versions")
    if not os.path.isdir(migrations) or any(
        name.startswith(f"{revision}_") for name in os.listdir(migrations)
    ):
        return
    installed = importlib.metadata.version("mlflow")
    newer = NEWER_SCHEMA_HEADS.get(revision)
    made_by = f"MLflow {newer} or newer" if newer else "a newer MLflow"
    raise ValueError(
        f"it was migrated by {made_by} (schema revision {revision}), which MLflow {installed} here cannot "
        f"open; run mbgd with {'mlflow>=' + newer if newer else 'that MLflow'}, or use another store"
    )
