#!/usr/bin/env bash
# Started by pgbench-compare.sh as the "pgward" target (OURS_CMD): writes a
# config for the benchmark cluster from the variables the harness exports and
# runs pgward in the foreground. PGWARD_PROVISIONED=1: the bench role's
# sessions run as a login of their own, given its grants by `pgward provision
# --apply` first (as the harness's database user). AUDIT_MODE=strict|written|async
# turns the audit log on, into AUDIT_DIR (default: WORK_DIR/audit).
# APPROVALS=1 adds approval rules pgbench never matches and the admin API.
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
case "${AUDIT_MODE:-off}" in
  strict|written|async)
    cat >>"$WORK_DIR/pgward.toml" <<TOML

[audit]
dir = "${AUDIT_DIR:-$WORK_DIR/audit}"
durability = "$AUDIT_MODE"
TOML
    ;;
  off) ;;
  *) echo "pgward-target.sh: AUDIT_MODE must be strict, written, async or off" >&2; exit 2 ;;
esac
if [ "${APPROVALS:-0}" = 1 ]; then
  # Approval rules none of pgbench's statements match, and the admin API
  # (with its per-statement metrics): what deciding costs when nothing waits.
  cat >>"$WORK_DIR/pgward.toml" <<TOML

[roles.bench.approval]
require = ["truncate", "delete_without_where", "unbounded_select:public.pgbench_history"]

[admin]
listen = "127.0.0.1:${ADMIN_PORT:-$((LISTEN_PORT + 1000))}"
state_dir = "$WORK_DIR/state"

[[admin.reviewers]]
name = "bench-reviewer"
token_env = "BENCH_REVIEWER_TOKEN"
TOML
  export BENCH_REVIEWER_TOKEN=bench-reviewer-token-0123456789
fi
if [ "${PGWARD_PROVISIONED:-0}" = 1 ]; then
  cat >>"$WORK_DIR/pgward.toml" <<TOML

[databases.$DB_NAME.logins]
bench = { user = "pgward_bench_login", password = "bench-login-pw" }
TOML
  # The harness's cluster trusts the postgres user on its socket (beside
  # WORK_DIR): an administrator for provisioning over TCP.
  psql -X -q -h "$(dirname "$WORK_DIR")" -p "$PG_PORT" -U postgres -d "$DB_NAME" \
    -c "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgward_bench_admin') THEN CREATE ROLE pgward_bench_admin LOGIN SUPERUSER PASSWORD 'admin-pw'; END IF; END\$\$" >/dev/null
  PGWARD_ADMIN_DSN="host=$PG_HOST port=$PG_PORT user=pgward_bench_admin password=admin-pw dbname=$DB_NAME sslmode=disable" \
    "$PGWARD_BIN" provision --config "$WORK_DIR/pgward.toml" --database "$DB_NAME" --apply >"$WORK_DIR/provision.log" 2>&1 \
    || { cat "$WORK_DIR/provision.log" >&2; exit 1; }
fi
PGWARD_LOG=${PGWARD_LOG:-warn} exec "$PGWARD_BIN" serve --config "$WORK_DIR/pgward.toml"
