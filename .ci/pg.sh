# shellcheck shell=bash
# A throw-away PostgreSQL server for the test suite.
#
# Source it and call the functions (this is what .ci/run does):
#
#   . .ci/pg.sh
#   pg_install            # root only: apt-get install postgresql if the server is missing
#   trap pg_stop EXIT
#   pg_start              # exports DETENTE_TEST_PG_URL and DETENTE_PG_DIR
#   python -m pytest
#
# or run it (this is what tests/db.py does when DETENTE_TEST_PG_URL is unset):
#
#   eval "$(bash .ci/pg.sh start)"   # prints the two export lines
#   bash .ci/pg.sh stop "$DETENTE_PG_DIR"
#
# The cluster lives in a fresh mktemp directory, is owned by and runs as an
# unprivileged user (yourself; as root: the `postgres` system user, else a
# `detente-ci` user created for it), listens on 127.0.0.1 only (TCP; its unix
# socket is inside the temp directory), trusts loopback (it holds nothing but
# test data and lives for one run), keeps fsync on, and is stopped with
# `pg_ctl stop -m fast` and deleted by pg_stop.
#
# Environment: DETENTE_PG_PORT (first port tried, default random in 20000-39999),
# DETENTE_PG_BINDIR (the directory holding initdb/pg_ctl), TMPDIR.

# Prints the directory holding initdb and pg_ctl, or fails.
pg_bindir() {
  local dir
  if [ -n "${DETENTE_PG_BINDIR:-}" ] && [ -x "$DETENTE_PG_BINDIR/initdb" ]; then
    printf '%s\n' "$DETENTE_PG_BINDIR"
    return 0
  fi
  # pg_config also comes with libpq-dev alone: trust it only if initdb is there.
  if command -v pg_config >/dev/null 2>&1; then
    dir=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      printf '%s\n' "$dir"
      return 0
    fi
  fi
  # Debian/Ubuntu keep the server out of PATH; take the newest major version.
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
    printf '%s\n' "$dir"
    return 0
  fi
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dir=$(dirname "$(readlink -f "$(command -v initdb)")")
    printf '%s\n' "$dir"
    return 0
  fi
  return 1
}

# Installs the PostgreSQL server with apt-get if it is missing (root only).
pg_install() {
  if pg_bindir >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "pg.sh: no PostgreSQL server binaries found and not root: install postgresql" >&2
    return 1
  fi
  echo "== installing PostgreSQL (apt-get)"
  # The Debian package would create and start a "main" cluster on port 5432;
  # the tests start their own, so ask it not to.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/detente-ci.conf
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  pg_bindir >/dev/null
}

# Prints the user the server runs as (creating it if needed, as root).
_pg_user() {
  if [ "$(id -u)" -ne 0 ]; then
    id -un
  elif getent passwd postgres >/dev/null; then
    echo postgres
  else
    getent passwd detente-ci >/dev/null ||
      useradd --system --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin detente-ci
    echo detente-ci
  fi
}

# Runs a command as the server's user, from a directory it can read.
_pg_as() {
  local user=$1
  shift
  if [ "$(id -u)" -eq 0 ]; then
    (cd "$DETENTE_PG_DIR" && runuser -u "$user" -- "$@")
  else
    (cd "$DETENTE_PG_DIR" && "$@")
  fi
}

# True if something accepts TCP connections on 127.0.0.1:$1.
_pg_port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Starts the server; exports DETENTE_TEST_PG_URL and DETENTE_PG_DIR.
pg_start() {
  local bindir user port log
  bindir=$(pg_bindir) || {
    echo "pg.sh: no PostgreSQL server binaries (initdb, pg_ctl) found" >&2
    return 1
  }
  user=$(_pg_user)
  DETENTE_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/detente-pg.XXXXXX")
  export DETENTE_PG_DIR
  mkdir "$DETENTE_PG_DIR/sock"
  # mktemp -d gives 0700: the directory is the server user's alone.
  [ "$(id -u)" -ne 0 ] || chown -R "$user:" "$DETENTE_PG_DIR"
  log="$DETENTE_PG_DIR/server.log"

  # A random first port: two test sessions starting at once must not race for one.
  port=${DETENTE_PG_PORT:-$((20000 + RANDOM % 20000))}
  while _pg_port_busy "$port"; do
    port=$((port + 1))
  done

  # initdb refuses to run as root; -A trust: see the header.
  _pg_as "$user" "$bindir/initdb" -D "$DETENTE_PG_DIR/data" -U postgres -A trust \
    -E UTF8 --locale=C --no-instructions >"$DETENTE_PG_DIR/initdb.log" 2>&1 || {
    cat "$DETENTE_PG_DIR/initdb.log" >&2
    return 1
  }
  cat >>"$DETENTE_PG_DIR/data/postgresql.conf" <<EOF

# detente test cluster (.ci/pg.sh)
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$DETENTE_PG_DIR/sock'
unix_socket_permissions = 0700
fsync = on
max_connections = 200
EOF
  if ! _pg_as "$user" "$bindir/pg_ctl" -D "$DETENTE_PG_DIR/data" -l "$log" -w -t 60 \
    start >/dev/null; then
    echo "pg.sh: the PostgreSQL server did not start; its log:" >&2
    cat "$log" >&2 || true
    return 1
  fi
  DETENTE_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
  export DETENTE_TEST_PG_URL
  echo "== PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') as $user on 127.0.0.1:$port ($DETENTE_PG_DIR)" >&2
}

# Stops the server started by pg_start (or the one in directory $1) and deletes it.
pg_stop() {
  local dir=${1:-${DETENTE_PG_DIR:-}} bindir user
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  case $(basename "$dir") in
    detente-pg.*) ;;
    *)
      echo "pg.sh: refusing to delete $dir: not a pg.sh directory" >&2
      return 1
      ;;
  esac
  if [ -f "$dir/data/postmaster.pid" ] && bindir=$(pg_bindir); then
    user=$(stat -c %U "$dir/data" 2>/dev/null || id -un)
    DETENTE_PG_DIR=$dir _pg_as "$user" "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 \
      stop >/dev/null ||
      DETENTE_PG_DIR=$dir _pg_as "$user" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w \
        stop >/dev/null || true
  fi
  rm -rf -- "$dir"
  if [ "${DETENTE_PG_DIR:-}" = "$dir" ]; then
    unset DETENTE_PG_DIR DETENTE_TEST_PG_URL
  fi
  return 0
}

# Run as a script: `pg.sh start` prints export lines, `pg.sh stop DIR` stops.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case ${1:-} in
    start)
      pg_start || {
        pg_stop
        exit 1
      }
      printf 'export DETENTE_TEST_PG_URL=%q\nexport DETENTE_PG_DIR=%q\n' \
        "$DETENTE_TEST_PG_URL" "$DETENTE_PG_DIR"
      ;;
    stop) pg_stop "${2:-}" ;;
    install) pg_install ;;
    bindir) pg_bindir ;;
    *)
      echo "usage: $0 start | stop DIR | install | bindir" >&2
      exit 2
      ;;
  esac
fi
