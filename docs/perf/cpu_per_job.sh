#!/usr/bin/env bash
# CPU per job, not jobs per second: what worker processes and PostgreSQL spend to drain N no-op
# jobs. On a shared 2-core VM the drain rate moves ±20% between back-to-back runs of the same
# code; CPU seconds move less, and the PostgreSQL/worker split shows which side a change helped.
#
#   docs/perf/cpu_per_job.sh [PROCESSES] [JOBS]      (defaults: 2 processes, 100,000 jobs)
#
# Makes a database of its own on BENCH_POSTGRES_URL's server (dropped at the end), migrates it,
# enqueues the jobs with `syncbridge enqueue --from-file`, then times `syncbridge worker --burst`
# processes. Worker CPU is user+system of each process (/usr/bin/time); PostgreSQL CPU is what
# the server's processes spent meanwhile (the postmaster's children-CPU counters include the
# exited backends). Needs to run where the PostgreSQL server runs (it reads /proc).
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
cd "$(dirname "$0")/../.."
PROCESSES=${1:-2}
JOBS=${2:-100000}
SERVER=${BENCH_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
DB=syncbridge_cpu_per_job
URL=${SERVER%/*}/$DB
PSQL=(psql -q -X -h 127.0.0.1 -U postgres)
SB=.venv/bin/syncbridge
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null' EXIT

"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
$SB --database-url "$URL" migrate >/dev/null 2>&1
.venv/bin/python -c "
import json, sys
for n in range($JOBS):
    print(json.dumps({'job_type': 'noop', 'entity_id': f'cpu-{n}'}))" > "$WORK/jobs.jsonl"
$SB --database-url "$URL" enqueue --from-file "$WORK/jobs.jsonl" >/dev/null 2>&1
"${PSQL[@]}" -d "$DB" -c "VACUUM ANALYZE" >/dev/null

server_ticks() {  # own + waited-for children CPU of every PostgreSQL process, in clock ticks
  for pid in $(pgrep -u postgres); do
    awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat" 2>/dev/null || true
  done | awk '{s += $1} END {print s}'
}
before=$(server_ticks)
started=$(date +%s.%N)
for n in $(seq 1 "$PROCESSES"); do
  /usr/bin/time -f "%U %S" -o "$WORK/worker-$n.time" \
    $SB --database-url "$URL" worker --burst --concurrency 100 --job-type noop \
    >/dev/null 2>&1 &
done
wait
finished=$(date +%s.%N)
after=$(server_ticks)
.venv/bin/python - "$JOBS" "$PROCESSES" "$started" "$finished" "$before" "$after" \
  "$(getconf CLK_TCK)" "$WORK" <<'EOF'
import pathlib, sys
jobs, processes = int(sys.argv[1]), int(sys.argv[2])
wall = float(sys.argv[4]) - float(sys.argv[3])
server = (int(sys.argv[6]) - int(sys.argv[5])) / int(sys.argv[7])
worker = 0.0
for path in sorted(pathlib.Path(sys.argv[8]).glob("worker-*.time")):
    user, system = map(float, path.read_text().split())
    print(f"{path.stem}: user {user:.2f} s, system {system:.2f} s", file=sys.stderr)
    worker += user + system
print(
    f"{jobs} jobs, {processes} worker process(es): {wall:.1f} s ({jobs / wall:,.0f} jobs/s "
    f"with start-up); CPU per job: workers {worker / jobs * 1e6:.0f} us, "
    f"PostgreSQL {server / jobs * 1e6:.0f} us"
)
EOF
