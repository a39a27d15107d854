# shellcheck shell=bash
# Throwaway PostgreSQL + MLflow tracking server for the tests that need them.
#
# Sourced by .ci/run:
#     source .ci/services.sh
#     start_services                 # exports MBGD_TEST_POSTGRES_URL, MBGD_TEST_MLFLOW_URI, MBGD_REQUIRE_SERVICES=1
#     trap stop_services EXIT
#     make test
#
# By hand (a developer's shell):
#     eval "$(bash .ci/services.sh start)"   # exports the same variables (minus MBGD_REQUIRE_SERVICES)
#     bash .ci/services.sh env               # prints the export lines again
#     bash .ci/services.sh stop
#
# Everything lives in one `mktemp -d` directory (the cluster, its socket, the logs, the artifacts),
# removed by stop_services. PostgreSQL listens on 127.0.0.1 only, on a free port, runs as a non-root
# user (`postgres`, else a system user `mbgd-pg`; the current user when not root), and admits
# TCP logins only with scram-sha-256 for the superuser `mbgd` with a random password. The password
# is in the exported URLs on purpose: the tests check that it never reaches MLflow params or logs.
#
# Knobs: MBGD_MLFLOW_WORKERS (uvicorn workers, default 2), MBGD_MLFLOW_START_TIMEOUT (seconds to wait
# for /health, default 180: the first start creates MLflow's tables; on a busy 2-core box, 20-70 s).

_MBGD_SERVICES_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_svc_log() { printf '%s\n' "$*" >&2; }
_svc_die() {
    printf 'services: %s\n' "$*" >&2
    return 1
}

_svc_python() {
    if [[ -x "$_MBGD_SERVICES_ROOT/.venv/bin/python" ]]; then
        printf '%s\n' "$_MBGD_SERVICES_ROOT/.venv/bin/python"
    else
        command -v python3
    fi
}

_svc_free_port() {
    "$(_svc_python)" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Run a command as the cluster's owner, from a directory it can read.
_svc_as_pg() {
    if [[ $EUID -eq 0 ]]; then
        (cd "$MBGD_SERVICES_DIR" && runuser -u "$_MBGD_PG_USER" -- "$@")
    else
        (cd "$MBGD_SERVICES_DIR" && "$@")
    fi
}

_svc_newest_pg_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" ]] && printf '%s\n' "$d"
    done | sort -V | tail -n 1
}

# The newest PostgreSQL's bin directory, installing Debian's postgresql package if there is none.
_svc_pg_bin() {
    local bin
    bin="$(_svc_newest_pg_bin)"
    if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
        _svc_log "services: installing PostgreSQL (apt-get install postgresql)"
        local sudo=()
        [[ $EUID -eq 0 ]] || sudo=(sudo)
        # The package may start its own cluster on 5432; ours does not use it.
        "${sudo[@]}" apt-get update -qq >&2 &&
            DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq postgresql >&2 ||
            _svc_die "could not install the postgresql package" || return 1
        bin="$(_svc_newest_pg_bin)"
    fi
    [[ -n "$bin" && -x "$bin/initdb" && -x "$bin/pg_ctl" ]] || _svc_die "no initdb/pg_ctl under /usr/lib/postgresql/*/bin" || return 1
    printf '%s\n' "$bin"
}

_svc_exports() {
    printf 'export MBGD_SERVICES_DIR=%q\n' "$MBGD_SERVICES_DIR"
    printf 'export MBGD_TEST_POSTGRES_URL=%q\n' "$MBGD_TEST_POSTGRES_URL"
    printf 'export MBGD_TEST_MLFLOW_URI=%q\n' "$MBGD_TEST_MLFLOW_URI"
}

_svc_http_ok() {
    if command -v curl >/dev/null; then
        curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
    else
        "$(_svc_python)" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
    fi
}

_svc_redact() { sed -e "s/${_MBGD_PG_PASSWORD:-@@none@@}/***/g"; }

start_services() {
    # Services inherited through the environment (a developer's `eval "$(bash .ci/services.sh start)"`)
    # are neither reused nor stopped: this shell starts, and stops, its own.
    if [[ -n "${_MBGD_SERVICES_STARTED:-}" && -d "${_MBGD_SERVICES_STARTED:-}" ]]; then
        _svc_die "already running in $_MBGD_SERVICES_STARTED (stop_services first)"
        return 1
    fi
    local pg_bin py mlflow dir pg_port ml_port password
    pg_bin="$(_svc_pg_bin)" || return 1
    py="$(_svc_python)"
    mlflow="$_MBGD_SERVICES_ROOT/.venv/bin/mlflow"
    [[ -x "$mlflow" ]] || _svc_die "$mlflow not found: run 'make install' first" || return 1
    "$_MBGD_SERVICES_ROOT/.venv/bin/python" -c 'import psycopg2' 2>/dev/null ||
        _svc_die "psycopg2 is not installed in .venv (pip install psycopg2-binary)" || return 1

    # The cluster's owner: PostgreSQL refuses to run as root.
    if [[ $EUID -eq 0 ]]; then
        if id -u postgres >/dev/null 2>&1; then
            _MBGD_PG_USER=postgres
        else
            id -u mbgd-pg >/dev/null 2>&1 ||
                useradd --system --no-create-home --shell /usr/sbin/nologin mbgd-pg ||
                _svc_die "could not create the system user mbgd-pg" || return 1
            _MBGD_PG_USER=mbgd-pg
        fi
    else
        _MBGD_PG_USER="$(id -un)"
    fi

    dir="$(mktemp -d "${TMPDIR:-/tmp}/mbgd-services.XXXXXX")" || return 1
    _MBGD_SERVICES_STARTED="$dir"
    export MBGD_SERVICES_DIR="$dir"
    mkdir -p "$dir/artifacts"
    [[ $EUID -ne 0 ]] || chown "$_MBGD_PG_USER" "$dir"
    password="$("$py" -c 'import secrets; print(secrets.token_hex(16))')"
    _MBGD_PG_PASSWORD="$password"
    # pwfile: readable by the cluster's owner only, deleted right after initdb.
    (umask 077 && printf '%s\n' "$password" >"$dir/pwfile")
    [[ $EUID -ne 0 ]] || chown "$_MBGD_PG_USER" "$dir/pwfile"

    if ! _svc_as_pg "$pg_bin/initdb" -D "$dir/data" -U mbgd --pwfile="$dir/pwfile" \
        --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync \
        >"$dir/initdb.log" 2>&1; then
        rm -f "$dir/pwfile"
        _svc_log "services: initdb failed:"
        tail -n 20 "$dir/initdb.log" >&2
        stop_services
        return 1
    fi
    rm -f "$dir/pwfile"

    for _ in 1 2 3; do  # another process may take the free port first
        pg_port="$(_svc_free_port)"
        if _svc_as_pg "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
            start >/dev/null 2>&1; then
            break
        fi
        pg_port=""
    done
    if [[ -z "$pg_port" ]]; then
        _svc_log "services: PostgreSQL did not start; the end of $dir/postgres.log:"
        tail -n 20 "$dir/postgres.log" >&2
        stop_services
        return 1
    fi
    _MBGD_PG_BIN="$pg_bin"
    local db
    for db in optuna mlflow; do
        if ! PGPASSWORD="$password" "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U mbgd "$db" >&2; then
            _svc_log "services: could not create database $db"
            stop_services
            return 1
        fi
    done
    _svc_log "postgres on 127.0.0.1:$pg_port"
    export MBGD_TEST_POSTGRES_URL="postgresql+psycopg2://mbgd:$password@127.0.0.1:$pg_port/optuna"

    # MLflow in its own session (setsid), so that stop_services can end its whole process group
    # (the uvicorn master and workers). No job runner: it would add a dozen huey consumer
    # processes that the tests do not use. The store URI goes by environment, not argv (`ps`).
    ml_port="$(_svc_free_port)"
    # shellcheck disable=SC2016  # $$, $0 and $@ are the inner bash's
    (
        cd "$dir" &&
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
            MLFLOW_BACKEND_STORE_URI="postgresql+psycopg2://mbgd:$password@127.0.0.1:$pg_port/mlflow" \
            setsid -f bash -c 'echo $$ >"$0/mlflow.pid"; exec "$@"' "$dir" \
                "$mlflow" server \
                --serve-artifacts --artifacts-destination "$dir/artifacts" \
                --host 127.0.0.1 --port "$ml_port" --workers "${MBGD_MLFLOW_WORKERS:-2}" \
                </dev/null >"$dir/mlflow.log" 2>&1
    )
    local uri="http://127.0.0.1:$ml_port" deadline=$((SECONDS + ${MBGD_MLFLOW_START_TIMEOUT:-180})) pid
    until _svc_http_ok "$uri/health"; do
        pid="$(cat "$dir/mlflow.pid" 2>/dev/null || true)"
        if { [[ -n "$pid" ]] && ! _svc_group_alive "$pid"; } || ((SECONDS >= deadline)); then
            _svc_log "services: mlflow server did not answer $uri/health; the end of $dir/mlflow.log:"
            tail -n 30 "$dir/mlflow.log" | _svc_redact >&2
            stop_services
            return 1
        fi
        sleep 0.5
    done
    _svc_log "mlflow server on $uri"
    export MBGD_TEST_MLFLOW_URI="$uri"
    _svc_exports >"$dir/env"
    # The tests that need the services fail, rather than skip, when these are unreachable.
    # (Not in the printed exports: a developer's shell should skip once the services are stopped.)
    export MBGD_REQUIRE_SERVICES=1
}

# Whether process group $1 has a member that is not a zombie (setsid -f leaves the server to be
# reaped by init, which may take a while; a zombie still counts for `kill -0`).
_svc_group_alive() {
    ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

# Stops what start_services started in this shell (nothing else); safe to call again, and under set -e.
stop_services() {
    local dir="${_MBGD_SERVICES_STARTED:-}"
    [[ -n "$dir" && -d "$dir" ]] || return 0
    local pid i
    pid="$(cat "$dir/mlflow.pid" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && _svc_group_alive "$pid"; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do
            _svc_group_alive "$pid" || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        local pg_bin="${_MBGD_PG_BIN:-}" owner
        [[ -n "$pg_bin" ]] || pg_bin="$(_svc_newest_pg_bin)"
        owner="$(stat -c %U "$dir/data")"
        if [[ $EUID -eq 0 ]]; then
            (cd "$dir" && runuser -u "$owner" -- "$pg_bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1) || true
        else
            (cd "$dir" && "$pg_bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1) || true
        fi
        # pg_ctl gave up (or is missing): end the postmaster by its pid.
        if [[ -f "$dir/data/postmaster.pid" ]]; then
            pid="$(head -n 1 "$dir/data/postmaster.pid")"
            [[ -z "$pid" ]] || kill -QUIT "$pid" 2>/dev/null || true
            sleep 1
        fi
    fi
    rm -rf -- "$dir"
    if [[ "${MBGD_SERVICES_DIR:-}" == "$dir" ]]; then
        unset MBGD_SERVICES_DIR MBGD_TEST_POSTGRES_URL MBGD_TEST_MLFLOW_URI
    fi
    unset _MBGD_SERVICES_STARTED _MBGD_PG_PASSWORD
    return 0
}

# Run directly: bash .ci/services.sh start|stop|env
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    _state="${TMPDIR:-/tmp}/mbgd-services.$(id -u).dir"  # where the by-hand services live
    case "${1:-}" in
    start)
        if [[ -f "$_state" && -d "$(cat "$_state")" ]]; then
            _svc_die "already running in $(cat "$_state") (bash $0 stop first)"
            exit 1
        fi
        start_services
        printf '%s\n' "$MBGD_SERVICES_DIR" >"$_state"
        cat "$MBGD_SERVICES_DIR/env"
        ;;
    env)
        dir="${MBGD_SERVICES_DIR:-$(cat "$_state" 2>/dev/null || true)}"
        [[ -n "$dir" && -f "$dir/env" ]] || { _svc_die "not running (bash $0 start)"; exit 1; }
        cat "$dir/env"
        ;;
    stop)
        _MBGD_SERVICES_STARTED="${MBGD_SERVICES_DIR:-$(cat "$_state" 2>/dev/null || true)}"
        stop_services
        rm -f "$_state"
        ;;
    *)
        printf 'usage: bash %s start|stop|env\n' "$0" >&2
        exit 2
        ;;
    esac
fi
