#!/usr/bin/env bash
# Make sure a local PostgreSQL is installed, running and has the test role and
# database, then print the catalog URL to use on stdout (progress goes to stderr).
#
# Idempotent and fast when everything is already in place: one connection
# attempt, then the URL. Otherwise it installs PostgreSQL with apt-get, creates
# and starts a cluster (without systemd, so it works in containers and CI),
# waits until it accepts connections, and creates a role that may create the
# per-test databases. It needs root (or password-less sudo) only for the steps
# that change the machine.
#
# Settings (environment):
#   VAULTWATCH_PG_HOST      default 127.0.0.1
#   VAULTWATCH_PG_PORT      default 5432
#   VAULTWATCH_PG_USER      default vaultwatch  (role created with LOGIN CREATEDB)
#   VAULTWATCH_PG_PASSWORD  default vaultwatch
#   VAULTWATCH_PG_DATABASE  default vaultwatch_test
set -euo pipefail

HOST=${VAULTWATCH_PG_HOST:-127.0.0.1}
PORT=${VAULTWATCH_PG_PORT:-5432}
ROLE=${VAULTWATCH_PG_USER:-vaultwatch}
PASSWORD=${VAULTWATCH_PG_PASSWORD:-vaultwatch}
DATABASE=${VAULTWATCH_PG_DATABASE:-vaultwatch_test}
WAIT_SECONDS=${VAULTWATCH_PG_WAIT_SECONDS:-60}

URL="postgresql+psycopg://${ROLE}:${PASSWORD}@${HOST}:${PORT}/${DATABASE}"
LIBPQ_URL="postgresql://${ROLE}:${PASSWORD}@${HOST}:${PORT}/${DATABASE}?connect_timeout=3"

log() { echo "ensure-postgres: $*" >&2; }
die() { log "$*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "need root or password-less sudo to run: $*"
    fi
}

as_postgres() {
    if [ "$(id -un)" = postgres ]; then
        "$@"
    elif [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n -u postgres "$@"
    else
        die "need root, password-less sudo or the postgres user to run: $*"
    fi
}

ready() { command -v psql >/dev/null 2>&1 && psql "$LIBPQ_URL" -Atqc 'SELECT 1' >/dev/null 2>&1; }

# Fast path: everything is already there.
if ready; then
    echo "$URL"
    exit 0
fi

# 1. Installed?
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
    log "PostgreSQL is not installed; installing it with apt-get"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install PostgreSQL by hand"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
fi

# 2. A cluster on our port? (columns: version cluster port status ...)
cluster=$(pg_lsclusters --no-header 2>/dev/null | awk -v port="$PORT" '$3 == port {print $1, $2, $4; exit}')
if [ -z "$cluster" ]; then
    version=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)
    [ -n "$version" ] || die "no PostgreSQL server binaries under /usr/lib/postgresql"
    name=main
    if pg_lsclusters --no-header 2>/dev/null | awk '{print $1 "/" $2}' | grep -qx "$version/main"; then
        name=vaultwatch  # main exists on another port: leave it alone
    fi
    log "creating cluster $version/$name on port $PORT"
    as_root pg_createcluster --port "$PORT" "$version" "$name" >&2
    cluster="$version $name down"
fi
read -r version name status <<<"$cluster"

# 3. Running?
if [ "$status" != online ]; then
    log "starting cluster $version/$name"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start >&2 \
        || as_postgres "/usr/lib/postgresql/$version/bin/pg_ctl" \
            -D "/var/lib/postgresql/$version/$name" \
            -o "-c config_file=/etc/postgresql/$version/$name/postgresql.conf" \
            -l "/var/log/postgresql/postgresql-$version-$name.log" -w start >&2
fi

# 4. Accepting connections?
deadline=$((SECONDS + WAIT_SECONDS))
until pg_isready -q -h "$HOST" -p "$PORT"; do
    [ "$SECONDS" -lt "$deadline" ] || die "PostgreSQL did not become ready within ${WAIT_SECONDS}s"
    sleep 0.5
done

# 5. Role and database for the tests (through the local socket as the superuser).
superuser_sql() { as_postgres psql -p "$PORT" -v ON_ERROR_STOP=1 -Atq "$@"; }
if [ "$(superuser_sql -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
    log "creating role $ROLE"
    superuser_sql -c "CREATE ROLE \"$ROLE\" LOGIN CREATEDB PASSWORD '$PASSWORD'"
else
    superuser_sql -c "ALTER ROLE \"$ROLE\" LOGIN CREATEDB PASSWORD '$PASSWORD'"
fi
if [ "$(superuser_sql -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != 1 ]; then
    log "creating database $DATABASE"
    superuser_sql -c "CREATE DATABASE \"$DATABASE\" OWNER \"$ROLE\""
fi

ready || die "PostgreSQL is running but $ROLE cannot log in over TCP at $HOST:$PORT (check pg_hba.conf)"
echo "$URL"
