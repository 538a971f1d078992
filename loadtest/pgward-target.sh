#!/usr/bin/env bash
# Started by pgbench-compare.sh as the "pgward" target (OURS_CMD): writes a
# config for the benchmark cluster from the variables the harness exports and
# runs pgward in the foreground.
set -euo pipefail
cat >"$WORK_DIR/pgward.toml" <<TOML
[server]
listen = ["$LISTEN_HOST:$LISTEN_PORT"]
workers = $PROXY_THREADS

[databases.$DB_NAME]
host = "$PG_HOST"
port = $PG_PORT
user = "$DB_USER"
password = "$DB_PASSWORD"
sslmode = "disable"

[[users]]
name = "$DB_USER"
password = "$DB_PASSWORD"
roles = ["bench"]

[roles.bench]
operations = ["select", "insert", "update", "delete", "transaction", "copy_in", "ddl", "truncate", "maintenance"]
read = ["public.pgbench_*"]
write = ["public.pgbench_*"]
TOML
PGWARD_LOG=${PGWARD_LOG:-warn} exec "$PGWARD_BIN" serve --config "$WORK_DIR/pgward.toml"
