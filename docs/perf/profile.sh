#!/usr/bin/env bash
# Profile the worker's hot path with pyinstrument (a doc tool: `.venv/bin/pip install
# pyinstrument`). Usage: docs/perf/profile.sh [postgresql|sqlite] [JOBS] [CONCURRENCY]
# Writes docs/perf/profile-<backend>.txt: 5,000 no-op jobs drained by one burst worker.
set -euo pipefail
cd "$(dirname "$0")/../.."
backend=${1:-postgresql}
jobs=${2:-5000}
concurrency=${3:-100}
work=$(mktemp -d)
trap 'rm -rf "$work"; [ "$backend" = postgresql ] && dropdb -h 127.0.0.1 -U postgres --if-exists sb_profile' EXIT
if [ "$backend" = postgresql ]; then
  dropdb -h 127.0.0.1 -U postgres --if-exists sb_profile
  createdb -h 127.0.0.1 -U postgres sb_profile
  export SYNCBRIDGE_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/sb_profile
else
  export SYNCBRIDGE_DATABASE_URL="sqlite:///$work/profile.db"
fi
.venv/bin/syncbridge migrate >/dev/null
.venv/bin/python -c "
import json
for n in range($jobs):
    print(json.dumps({'job_type': 'noop', 'entity_id': f'p{n}'}))" > "$work/jobs.jsonl"
.venv/bin/syncbridge enqueue --from-file "$work/jobs.jsonl" >/dev/null
.venv/bin/python -m pyinstrument -i 0.001 -o "docs/perf/profile-$backend.txt" \
  -m syncbridge worker --burst --concurrency "$concurrency" --job-type noop 2>"$work/worker.log"
echo "wrote docs/perf/profile-$backend.txt"
