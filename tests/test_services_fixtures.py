"""The services tests cannot pass silently skipped under CI, and say locally how to start the services."""

import pytest

pytest_plugins = ["pytester"]

USES_BOTH = """
def test_postgres(postgres_url):
    pass

def test_mlflow(mlflow_server_uri):
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    from pathlib import Path

    tests = Path(__file__).parent
    pytester.makeconftest("from services import postgres_url, mlflow_server_uri  # noqa: F401")
    monkeypatch.syspath_prepend(str(tests))
    for name in ("MBGD_TEST_POSTGRES_URL", "MBGD_TEST_MLFLOW_URI", "MBGD_REQUIRE_SERVICES"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(USES_BOTH)
    return pytester


def test_without_services_the_tests_skip_and_say_how_to_start_them(suite: pytest.Pytester) -> None:
    result = suite.runpytest_inprocess("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*PostgreSQL not reachable: set MBGD_TEST_POSTGRES_URL "
            '(start them with: eval "$(bash .ci/services.sh start)")*',
            "*MLflow server not reachable: set MBGD_TEST_MLFLOW_URI "
            '(start them with: eval "$(bash .ci/services.sh start)")*',
        ]
    )


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_under_ci_a_missing_service_fails_the_test(suite: pytest.Pytester, monkeypatch, value: str) -> None:
    monkeypatch.setenv("MBGD_REQUIRE_SERVICES", value)
    result = suite.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*MBGD_REQUIRE_SERVICES is set, so this fails instead of skipping*"])


def test_an_unreachable_server_fails_under_ci_naming_it(suite: pytest.Pytester, monkeypatch) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MBGD_REQUIRE_SERVICES", "1")
    monkeypatch.setenv("MBGD_TEST_MLFLOW_URI", f"http://127.0.0.1:{port}")
    result = suite.runpytest_inprocess("-p", "no:cacheprovider", "-k", "mlflow")
    result.assert_outcomes(errors=1, deselected=1)
    result.stdout.fnmatch_lines([f"*GET http://127.0.0.1:{port}/health*"])
