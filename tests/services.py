"""Fixtures for the tests that need a PostgreSQL server and an MLflow tracking server.

`.ci/run` starts both (`.ci/services.sh`) and exports:

- ``MBGD_TEST_POSTGRES_URL``: ``postgresql+psycopg2://mbgd:PASSWORD@127.0.0.1:PORT/optuna``
- ``MBGD_TEST_MLFLOW_URI``: ``http://127.0.0.1:PORT`` (an ``mlflow server`` on its own PostgreSQL database)
- ``MBGD_REQUIRE_SERVICES=1``: an unreachable service fails the test instead of skipping it,
  so that CI cannot pass with these tests silently skipped.

A developer gets the first two with ``eval "$(bash .ci/services.sh start)"``; without them the tests skip.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_ENV = "MBGD_TEST_POSTGRES_URL"
MLFLOW_ENV = "MBGD_TEST_MLFLOW_URI"
REQUIRE_ENV = "MBGD_REQUIRE_SERVICES"
START_HINT = 'start them with: eval "$(bash .ci/services.sh start)"'
TIMEOUT_S = 5


def services_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(message: str) -> None:
    """Skip the test, or fail it where the services are required (CI)."""
    if services_required():
        pytest.fail(f"{message} ({REQUIRE_ENV} is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(message)


def _redacted(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _connect(url: str, dbname: str | None = None):
    """A psycopg2 connection to the server of a SQLAlchemy ``postgresql[+psycopg2]://`` URL."""
    import psycopg2
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return psycopg2.connect(
        host=u.host,
        port=u.port or 5432,
        user=u.username,
        password=u.password,
        dbname=dbname or u.database,
        connect_timeout=TIMEOUT_S,
    )


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The SQLAlchemy URL of a reachable PostgreSQL database (for Optuna's RDBStorage)."""
    message = f"PostgreSQL not reachable: set {POSTGRES_ENV} ({START_HINT})"
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        _unavailable(message)
    try:
        import psycopg2
    except ImportError:
        _unavailable(f"{message}: psycopg2 is not installed")
    error = None
    try:
        _connect(url).close()
    except psycopg2.Error as e:
        error = " ".join(str(e).split())  # libpq's message names the host and port, never the password
    if error is not None:
        _unavailable(f"{message}: {_redacted(url)}: {error}")
    return url


@pytest.fixture(scope="session")
def mlflow_server_uri() -> str:
    """The URI of a reachable MLflow tracking server (answers GET /health)."""
    message = f"MLflow server not reachable: set {MLFLOW_ENV} ({START_HINT})"
    uri = os.environ.get(MLFLOW_ENV, "").strip().rstrip("/")
    if not uri:
        _unavailable(message)
    error = None
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=TIMEOUT_S) as response:
            if response.status != 200:
                error = f"answered {response.status}"
    except (urllib.error.URLError, OSError) as e:
        error = str(e)
    if error is not None:
        _unavailable(f"{message}: GET {uri}/health: {error}")
    return uri


@pytest.fixture
def fresh_postgres_url(postgres_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a new, empty database on the same server, dropped after the test."""
    from sqlalchemy.engine import make_url

    test = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:30]
    name = f"mbgd_{test}_{uuid.uuid4().hex[:8]}"
    admin = _connect(postgres_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        admin.close()
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = _connect(postgres_url)
        admin.autocommit = True
        try:
            with admin.cursor() as cursor:
                # Connections the test left open (a storage's pool, a heartbeat thread) must not
                # block the drop.
                if admin.server_version >= 130000:
                    cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                else:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = %s AND pid <> pg_backend_pid()",
                        (name,),
                    )
                    cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        finally:
            admin.close()


@pytest.fixture
def mlflow_experiment(request: pytest.FixtureRequest) -> str:
    """A unique experiment name for this test (the server's store outlives the test)."""
    test = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")[:60]
    return f"mbgd-test-{test}-{uuid.uuid4().hex[:8]}"
