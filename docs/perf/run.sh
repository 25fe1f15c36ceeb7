#!/usr/bin/env bash
# Every figure of docs/performance.md, measured again (`make bench`): raw JSON into
# docs/perf/results/, then docs/perf/report.py turns it into docs/perf/tables.md and the charts.
#
# Runs for about 40 minutes on the 2-core machine (two 1,000,000-job backlogs and the peers'
# runs, Procrastinate at ~100 jobs/s, and a 1,000,000-job memory run take most of it). Each scenario makes its own database
# beside the configured ones and drops it. Environment:
#   BENCH_POSTGRES_URL   default postgresql+psycopg://postgres@127.0.0.1:5432/test
#   BENCH_SQLITE_URL     default sqlite:///<repo>/.bench/bench.db
#   BENCH_JOBS           default 20000 (noop, enqueue, backlog drains)
#   BENCH_BACKLOG        default 1000000
#   BENCH_ONLY           space-separated steps to run (default all; see STEPS below)
set -euo pipefail
cd "$(dirname "$0")/../.."
PG=${BENCH_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
mkdir -p .bench
SQ=${BENCH_SQLITE_URL:-sqlite:///$PWD/.bench/bench.db}
JOBS=${BENCH_JOBS:-20000}
BACKLOG=${BENCH_BACKLOG:-1000000}
OUT=docs/perf/results
SB=.venv/bin/syncbridge
PY=.venv/bin/python
mkdir -p "$OUT"

STEPS="pg-noop-p1 pg-noop-p2 sqlite-noop-p1 sqlite-noop-p2 pg-latency sqlite-latency
pg-enqueue sqlite-enqueue pg-sync sqlite-sync pg-sync-p2 pg-rss pg-logs-off pg-metrics bare-p1
bare-p2 pg-backlog sqlite-backlog pg-rss-1m"
ONLY=${BENCH_ONLY:-$STEPS}

step() {  # step NAME COMMAND...: run it unless left out, JSON to $OUT/NAME.json
  local name=$1
  shift
  case " $(echo $ONLY) " in *" $name "*) ;; *) return 0 ;; esac
  echo "== $name: $*" >&2
  "$@" > "$OUT/$name.json.tmp"
  mv "$OUT/$name.json.tmp" "$OUT/$name.json"
}

step pg-noop-p1 $SB --database-url "$PG" bench noop --jobs "$JOBS" --processes 1 --peers --repeat 3 --json
step pg-noop-p2 $SB --database-url "$PG" bench noop --jobs "$JOBS" --processes 2 --peers --repeat 3 --json
step sqlite-noop-p1 $SB --database-url "$SQ" bench noop --jobs "$JOBS" --processes 1 --json
step sqlite-noop-p2 $SB --database-url "$SQ" bench noop --jobs "$JOBS" --processes 2 --json
step pg-latency $SB --database-url "$PG" bench latency --json
step sqlite-latency $SB --database-url "$SQ" bench latency --json
step pg-enqueue $SB --database-url "$PG" bench enqueue --jobs "$JOBS" --peers --json
step sqlite-enqueue $SB --database-url "$SQ" bench enqueue --jobs "$JOBS" --json
step pg-sync $SB --database-url "$PG" bench sync --jobs 998 --json
step pg-sync-p2 $SB --database-url "$PG" bench sync --jobs 998 --processes 2 --json
step sqlite-sync $SB --database-url "$SQ" bench sync --jobs 998 --json
step pg-rss $SB --database-url "$PG" bench noop --jobs "$JOBS" --rss --json
step pg-logs-off env SYNCBRIDGE_LOG_LEVEL=warning \
  $SB --database-url "$PG" bench noop --jobs "$JOBS" --json
step pg-metrics $SB --database-url "$PG" bench noop --jobs "$JOBS" --metrics --json
step bare-p1 $PY scripts/peers/bare_loop.py --database-url "$PG" --jobs "$JOBS" --processes 1
step bare-p2 $PY scripts/peers/bare_loop.py --database-url "$PG" --jobs "$JOBS" --processes 2
step pg-backlog $SB --database-url "$PG" bench backlog --jobs "$JOBS" --backlog "$BACKLOG" \
  --repeat 3 --json
step sqlite-backlog $SB --database-url "$SQ" bench backlog --jobs "$JOBS" --backlog "$BACKLOG" \
  --repeat 3 --json
step pg-rss-1m $SB --database-url "$PG" bench noop --jobs "$BACKLOG" --rss --rss-at 200 --json

$PY docs/perf/report.py "$OUT" docs/perf
