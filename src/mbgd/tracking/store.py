"""The stores a command writes to, checked once before any work: reachable, or usable; and how each is named
in an error.

MLflow's tracking store always, its model registry when it is elsewhere (MLFLOW_REGISTRY_URI) and a command
registers models, Optuna's storage for the commands with studies. Without the check, an unreachable tracking
server costs MLflow's HTTP retries (about two minutes) after the training, a file that is not a database
MLflow's retries (a minute) and a traceback, and an unusable sqlite path or a store migrated by a newer
MLflow a traceback. Imports neither MLflow nor Optuna nor the HTTP stack's heavier parts: commands run it
before they start the trial-run helper or import their libraries.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
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
    """A store cannot be reached or used; the message names it (password shown as ***) and says what to do."""


@dataclass(frozen=True)
class Store:
    """A kind of store as errors name it: what it is, the setting that chose it, the way to another one."""

    name: str
    setting: str
    elsewhere: str
    mlflow_schema: bool  # MLflow's tables: a file migrated by a newer MLflow cannot be opened here
    make_folder: bool  # a sqlite file's missing folder is made (MLflow does); else it is the user's typo

    def describe(self, uri: str) -> str:
        return f"the {self.name} {redact(uri) + ' ' if uri else ''}({self.setting})"

    def failed(self, uri: str, reason: str) -> str:
        """The one line of a store that failed in the middle of a command."""
        return (
            f"{self.describe(uri)} failed: {reason}; check it and run the command again, or {self.elsewhere}"
        )


TRACKING_STORE = Store(
    "MLflow tracking store", "MLFLOW_TRACKING_URI", "set MLFLOW_TRACKING_URI to another store", True, True
)
MODEL_REGISTRY = Store(
    "MLflow model registry", "MLFLOW_REGISTRY_URI", "set MLFLOW_REGISTRY_URI to another one", True, True
)
OPTUNA_STORAGE = Store("Optuna storage", "--storage", "give another --storage", False, False)
ARTIFACT_STORE = Store(
    "MLflow artifact store", "the experiment's artifact location", "use another --experiment", False, False
)


class _Unusable(ValueError):
    """Why a store cannot be used, and what to do about it (`fix`, before "or <another store>")."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.fix = fix


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else MLflow's default store in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def registry_uri() -> str:
    """MLFLOW_REGISTRY_URI when set, else the tracking store, which MLflow then registers models in."""
    return os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri()


def require_tracking_store() -> str:
    """Check the store every command writes to and quiet MLflow's per-run links; returns its URI.

    MLflow prints "View run … / View experiment …" at the end of every run on a server; mbgd prints its own
    link once. The setting is inherited by the processes the command starts (trial-run helper, workers).
    """
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    uri = tracking_uri()
    check(uri)
    return uri


def require_model_registry() -> None:
    """Check the model registry of a command that registers models, when it is not the tracking store."""
    if registry_uri() != tracking_uri():
        check(registry_uri(), MODEL_REGISTRY)


def check(uri: str, store: Store = TRACKING_STORE) -> None:
    """Raise StoreUnavailable when the store at `uri` cannot be reached (a server or database) or used
    (sqlite).

    Other stores (databricks, …) are left to MLflow; an Optuna storage's missing folder or unknown URL to
    Optuna, whose error is a usage error.
    """
    scheme = urlsplit(uri).scheme.split("+")[0]
    try:
        if scheme in ("http", "https"):
            _probe_server(uri)
        elif scheme == "sqlite":
            _check_sqlite_path(uri, store)
        elif scheme in DATABASE_PORTS:
            _probe_port(uri, DATABASE_PORTS[scheme])
    except (OSError, ValueError) as error:
        reason = " ".join(str(getattr(error, "reason", None) or error).split()) or type(error).__name__
        raise StoreUnavailable(
            f"cannot use {store.describe(uri)}: {reason}; {_fix(error, scheme)}, or {store.elsewhere}"
        ) from None


def _fix(error: Exception, scheme: str) -> str:
    """What the user can do about a store that failed the check (before "or <another store>")."""
    if isinstance(error, _Unusable):
        return error.fix
    if isinstance(error, PermissionError):
        return "make it writable"
    return "check the path" if scheme == "sqlite" else "check that it is running and reachable"


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


def _check_sqlite_path(uri: str, store: Store) -> None:
    """The database file's folder exists or can be made (MLflow makes it; an Optuna storage's missing folder
    is left to Optuna), the file or folder is writable, and the file, when there, a database this library
    can open."""
    path = uri.removeprefix("sqlite://").split("?")[0]
    if path.startswith("/"):
        path = path[1:]  # sqlite:///relative.db, sqlite:////absolute.db
    if not path or path == ":memory:":
        return
    folder = os.path.dirname(os.path.abspath(path))
    if store.make_folder:
        os.makedirs(folder, exist_ok=True)
    elif not os.path.isdir(folder):
        return
    target = path if os.path.exists(path) else folder
    if not os.access(target, os.R_OK | os.W_OK):
        raise PermissionError(f"{target} is not writable")
    if os.path.isfile(path):
        _check_database(path, store)


def _check_database(path: str, store: Store) -> None:
    """The file is a SQLite database (MLflow retries a file that is not for a minute, then prints a
    traceback), and an MLflow store's schema revision one the installed MLflow has a migration for: a store
    migrated by a newer MLflow is one this MLflow cannot open (it raises "out-of-date database schema" and
    suggests an upgrade that fails). Read with sqlite3 and the names of MLflow's migration files, without
    importing MLflow."""
    import contextlib
    import importlib.metadata
    import importlib.util
    import sqlite3

    # Read-only and immutable: no lock taken, no -wal or -shm file made beside a store in write-ahead mode.
    uri = f"{Path(path).absolute().as_uri()}?mode=ro&immutable=1"
    revision = ""
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            db.execute("PRAGMA schema_version").fetchone()  # reads the header: garbage fails here
            if store.mlflow_schema:
                (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone() or ("",)
    except sqlite3.OperationalError:  # not a store yet (an empty file), not MLflow's: MLflow says
        return
    except sqlite3.DatabaseError as error:  # "file is not a database", "database disk image is malformed"
        raise _Unusable(
            f"{path} is not a SQLite database ({error})", "move the file aside to start a new one"
        ) from None
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
    raise _Unusable(
        f"it was migrated by {made_by} (schema revision {revision}), which MLflow {installed} here cannot "
        "open",
        f"run mbgd with {'mlflow>=' + newer if newer else 'that MLflow'}",
    )
