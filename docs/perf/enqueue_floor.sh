#!/usr/bin/env bash
# Where a single durable enqueue's time goes on PostgreSQL: the same autocommitted insert (the
# one `Store.enqueue` sends, `driver_sql.INSERT_ONE`, with its NOTIFY) timed through each layer
# in turn, one caller, N inserts each, in rounds that take turns:
#
#   pgbench      C client (libpq), the server's own floor for this statement
#   libpq        psycopg's low-level libpq binding, blocking PQexecPrepared: no Python layer
#   psycopg      Connection.execute(..., prepare=True).fetchone(): the driver as the engine uses it
#   engine       Store.enqueue: the API, with everything it builds around the statement
#
# and, to show what limits several callers, pgbench with 4 clients with and without the NOTIFY.
#
#   docs/perf/enqueue_floor.sh [INSERTS] [ROUNDS]      (defaults: 3,000 and 3)
#
# Makes a database of its own on BENCH_POSTGRES_URL's server (dropped at the end). Needs
# pgbench (PostgreSQL's client package). PGBENCH_SECONDS (default 5) sets each pgbench run's
# length (CI's smoke run uses 1).
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
cd "$(dirname "$0")/../.."
INSERTS=${1:-3000}
ROUNDS=${2:-3}
SERVER=${BENCH_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
DB=syncbridge_enqueue_floor_$$
PGBENCH_SECONDS=${PGBENCH_SECONDS:-5}
URL=${SERVER%/*}/$DB
HOST=$(.venv/bin/python -c "from sqlalchemy.engine import make_url; import sys; u = make_url(sys.argv[1]); print(u.host or '127.0.0.1', u.port or 5432, u.username or 'postgres')" "$SERVER")
read -r PGHOST_ PGPORT_ PGUSER_ <<< "$HOST"
PSQL=(psql -q -X -h "$PGHOST_" -p "$PGPORT_" -U "$PGUSER_")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null' EXIT

"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
.venv/bin/syncbridge --database-url "$URL" migrate >/dev/null 2>&1

# The engine's statement with the database clock, as pgbench and libpq take it: positional
# parameters, entity id and correlation id varying per insert.
.venv/bin/python - "$WORK" <<'EOF'
import re, sys
from syncbridge.db import driver_sql
sql = driver_sql.with_clock(driver_sql.INSERT_ONE, database_clock=True)
values = {"job_type": "'noop'", "payload": "'{}'", "max_retries": "3",
          "timeout_seconds": "NULL::integer", "run_at": "NULL::timestamptz",
          "idempotency_key": "NULL", "params_hash": "'h'"}
def positional(name):
    return values.get(name, {"entity_id": "$1", "correlation_id": "$2"}.get(name))
libpq = re.sub(r"%\((\w+)\)s", lambda m: positional(m.group(1)), sql)
open(f"{sys.argv[1]}/libpq.sql", "w").write(libpq)
bench = libpq.replace("$1", "'e-' || :n").replace("$2", "md5(:n::text)")
notify = "\\set n random(1, 2000000000)\n" + " ".join(bench.split()) + ";\n"
open(f"{sys.argv[1]}/notify.sql", "w").write(notify)
plain = re.sub(r",\s*pg_notify\([^)]*\)", "", notify)
assert plain != notify
open(f"{sys.argv[1]}/plain.sql", "w").write(plain)
EOF

pgbench_rate() {  # pgbench_rate CLIENTS SCRIPT: transactions a second
  pgbench -n -h "$PGHOST_" -p "$PGPORT_" -U "$PGUSER_" -M prepared -c "$1" -j "$1" \
    -T "$PGBENCH_SECONDS" -f "$2" "$DB" 2>/dev/null \
    | awk '/^tps/ {printf "%.0f", $3}'
}

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round: pgbench 1 client $(pgbench_rate 1 "$WORK/notify.sql")/s"
  .venv/bin/python - "$URL" "$WORK" "$INSERTS" "$round" <<'EOF'
import sys, time
import psycopg
from syncbridge.bench.measure import noop_requests
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store

url, work, count, round_ = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
dsn = url.replace("postgresql+psycopg://", "postgresql://")
libpq_sql = open(f"{work}/libpq.sql").read()
sql = Store(make_engine(url)).insert_one_sql

def timed(label, run):
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"round {round_}: {label} {count / wall:,.0f}/s "
          f"({wall / count * 1e6:.0f} us a call, client CPU {cpu / count * 1e6:.0f} us)")

with psycopg.connect(dsn, autocommit=True) as conn:
    pgconn = conn.pgconn
    pgconn.nonblocking = 0
    pgconn.prepare(b"floor", libpq_sql.encode())
    def libpq():
        for n in range(count):
            pgconn.exec_prepared(b"floor", [f"l{round_}-{n}".encode(), b"c"])
    timed("libpq", libpq)

with psycopg.connect(dsn, autocommit=True) as conn:
    store = Store(make_engine(url))
    params = [store.insert_one_params(r, "h") for r in noop_requests(count, f"p{round_}-")]
    def driver():
        for p in params:
            conn.execute(sql, p, prepare=True).fetchone()
    timed("psycopg", driver)

store = Store(make_engine(url))
requests = list(noop_requests(count, f"s{round_}-"))
store.enqueue(next(noop_requests(1, f"warm{round_}-")))
def engine():
    for request in requests:
        store.enqueue(request)
timed("engine", engine)
store.engine.dispose()
EOF
done
echo "4 clients: pgbench with the NOTIFY $(pgbench_rate 4 "$WORK/notify.sql")/s," \
  "without $(pgbench_rate 4 "$WORK/plain.sql")/s"
