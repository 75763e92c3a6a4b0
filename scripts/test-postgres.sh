#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: its own data directory, its own
# Unix socket directory and its own free port on 127.0.0.1, so a test run never
# depends on or disturbs a PostgreSQL the machine already runs (on 5432 or
# anywhere else).
#
#   scripts/test-postgres.sh start [DIR]   create DIR (default: a new directory
#                                          under $TMPDIR or /tmp), initdb, start,
#                                          create the test role and database; print
#                                          the catalog URL on stdout
#   scripts/test-postgres.sh stop DIR      stop the cluster and remove DIR
#
# The URL has a role that may create databases (the tests make one per test).
# Progress and errors go to stderr; `start` exits non-zero with the reason when
# the cluster cannot be had. The server binaries come from /usr/lib/postgresql/*/bin
# (the newest), or $VAULTWATCH_PG_BINDIR; PostgreSQL is installed with apt-get
# when absent. PostgreSQL refuses to run as root, so as root the cluster runs as
# the `postgres` system user (created if missing).
#
# With VAULTWATCH_PG_OWNER_PID set, a watcher stops the cluster and removes DIR
# once that process is gone, so a test run killed before it could call `stop`
# (SIGKILL, a timeout's SIGTERM) leaves nothing running.
#
# Settings (environment): VAULTWATCH_PG_BINDIR, VAULTWATCH_PG_WAIT_SECONDS (60),
# VAULTWATCH_PG_OWNER_PID.
set -euo pipefail

SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

ROLE=vaultwatch
PASSWORD=vaultwatch
DATABASE=vaultwatch_test
MARKER=.vaultwatch-test-postgres
WAIT_SECONDS=${VAULTWATCH_PG_WAIT_SECONDS:-60}

log() { echo "test-postgres: $*" >&2; }
die() { log "$*"; exit 1; }

bindir() {
    if [ -n "${VAULTWATCH_PG_BINDIR:-}" ]; then
        [ -x "$VAULTWATCH_PG_BINDIR/initdb" ] || die "no initdb in VAULTWATCH_PG_BINDIR=$VAULTWATCH_PG_BINDIR"
        echo "$VAULTWATCH_PG_BINDIR"
        return
    fi
    local version
    version=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$version" ] || [ ! -x "/usr/lib/postgresql/$version/bin/initdb" ]; then
        log "PostgreSQL server binaries not found under /usr/lib/postgresql; installing postgresql with apt-get"
        [ "$(id -u)" -eq 0 ] || die "installing PostgreSQL needs root: apt-get install postgresql"
        command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install the PostgreSQL server by hand"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
        version=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)
        [ -n "$version" ] || die "postgresql installed, but no server binaries under /usr/lib/postgresql"
    fi
    echo "/usr/lib/postgresql/$version/bin"
}

# The user the server runs as: ourselves, or `postgres` when we are root.
run_user() {
    if [ "$(id -u)" -ne 0 ]; then
        id -un
        return
    fi
    if ! id -u postgres >/dev/null 2>&1; then
        log "creating the postgres system user"
        useradd --system --user-group --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin postgres
    fi
    echo postgres
}

as_user() {
    local user=$1
    shift
    if [ "$user" = "$(id -un)" ]; then
        "$@"
    else
        runuser -u "$user" -- "$@"
    fi
}

free_port() {
    python3 -c '
import socket
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])'
}

start() {
    local dir=${1:-}
    if [ -z "$dir" ]; then
        dir=$(mktemp -d "${TMPDIR:-/tmp}/vaultwatch-pg.XXXXXX")
    else
        mkdir -p "$dir"
        [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
    fi
    dir=$(cd "$dir" && pwd)
    touch "$dir/$MARKER"
    # A start that fails half-way leaves no server running and no directory behind.
    STARTING=$dir
    trap 'stop "$STARTING" || true' EXIT
    local bin user
    bin=$(bindir)
    user=$(run_user)
    mkdir -p "$dir/socket"
    [ "$user" = "$(id -un)" ] || chown -R "$user" "$dir"
    as_user "$user" test -w "$dir" \
        || die "user $user cannot write $dir (every parent directory must let it through)"
    # Unix socket paths are limited to 107 bytes.
    [ ${#dir} -lt 80 ] || die "$dir is too long for a Unix socket path; use a shorter directory"

    local pwfile="$dir/superuser.pw"
    (umask 077 && head -c 18 /dev/urandom | base64 >"$pwfile")
    [ "$user" = "$(id -un)" ] || chown "$user" "$pwfile"
    as_user "$user" "$bin/initdb" -D "$dir/data" -U "$user" --pwfile="$pwfile" \
        --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1 \
        || die "initdb failed ($bin/initdb as $user):$(printf '\n')$(tail -n 20 "$dir/initdb.log")"
    rm -f "$pwfile"

    # fsync off: a throwaway cluster need not survive a crash. synchronous_commit keeps its
    # default, because the tests check which sessions turn it off.
    # A free port can be taken by someone else before the server binds it: try again.
    local port="" attempt
    for attempt in 1 2 3; do
        port=$(free_port)
        [ "$port" != 5432 ] || continue
        if as_user "$user" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
            -t "$WAIT_SECONDS" -o "-c listen_addresses=127.0.0.1 -c port=$port \
            -c unix_socket_directories=$dir/socket -c max_connections=300 \
            -c fsync=off -c full_page_writes=off" \
            start >/dev/null 2>&1; then
            break
        fi
        port=""
    done
    [ -n "$port" ] || die "the cluster in $dir did not start:$(printf '\n')$(tail -n 20 "$dir/server.log" 2>/dev/null)"
    echo "$port" >"$dir/port"

    local sql=(as_user "$user" "$bin/psql" -h "$dir/socket" -p "$port" -d postgres -v ON_ERROR_STOP=1 -Atq)
    "${sql[@]}" -c "CREATE ROLE \"$ROLE\" LOGIN CREATEDB PASSWORD '$PASSWORD'" >&2 \
        || die "could not create role $ROLE in the cluster in $dir"
    # The tests drop their databases WITH (FORCE), which must also end an autovacuum
    # worker that happens to be in them: allowed only with pg_signal_backend.
    "${sql[@]}" -c "GRANT pg_signal_backend TO \"$ROLE\"" >&2 \
        || die "could not grant pg_signal_backend to $ROLE in the cluster in $dir"
    "${sql[@]}" -c "CREATE DATABASE \"$DATABASE\" OWNER \"$ROLE\"" >&2 \
        || die "could not create database $DATABASE in the cluster in $dir"
    local url="postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$port/$DATABASE"
    echo "$url" >"$dir/url"
    trap - EXIT
    if [ -n "${VAULTWATCH_PG_OWNER_PID:-}" ]; then
        # Detached, and holding none of our output open (callers read it to the end).
        setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 2; done
                        "$3" stop "$2"' watch "$VAULTWATCH_PG_OWNER_PID" "$dir" "$SELF" \
            </dev/null >/dev/null 2>&1 &
    fi
    log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $dir"
    echo "$url"
}

stop() {
    local dir=${1:?usage: $0 stop DIR}
    [ -d "$dir" ] || return 0
    [ -f "$dir/$MARKER" ] || die "$dir was not made by $0: not touching it"
    if [ -f "$dir/data/postmaster.pid" ]; then
        local bin user
        bin=$(bindir)
        user=$(stat -c %U "$dir/data")
        if ! as_user "$user" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1; then
            local pid
            pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
            if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
                log "pg_ctl stop failed; killing postmaster $pid"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    *) echo "usage: $0 start [DIR] | stop DIR" >&2; exit 2 ;;
esac
