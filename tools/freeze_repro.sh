#!/usr/bin/env bash
# The permanent stall, on demand: a worker drains a preloaded backlog, the broker freezes for a
# minute (SIGSTOP: connections stay open, nothing answers), then the worker is watched.
#
#   tools/freeze_repro.sh                                          # today's settings
#   RUNWAY_PRODUCER_REQUEST_TIMEOUT_S=1200 tools/freeze_repro.sh   # Faust's default: hangs
#
# Prints the group's offset lag every few seconds after the freeze, then whether the worker
# stops on SIGTERM within 60 s. Needs the local stack (`runway stack up`). Topics, group, Redis
# keys and data dir are new each run (prefix freeze-<time>).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNWAY=.venv/bin/runway
run="freeze-$(date +%s)"
export RUNWAY_TOPIC_PREFIX="$run." RUNWAY_APP_ID="$run" RUNWAY_REDIS_KEY_PREFIX="$run"
export RUNWAY_DATADIR="var/$run/worker" RUNWAY_BATCH_VIEW_URI="var/$run/batch-view"
export RUNWAY_WEB_PORT="${RUNWAY_WEB_PORT:-6095}"
broker=$(cat .stack/run/kafka.pid | cut -d' ' -f1)
lag() { timeout 60 $RUNWAY lag --json --interval 1 2>/dev/null | head -1 |
  python3 -c "import json,sys; d=json.loads(sys.stdin.readline() or '{}'); print(d.get('offset_lag'), d.get('consumption_rate'))" ||
  echo "? ?"; }

$RUNWAY topics create >/dev/null
echo "backlog: 50 models, 2.7 M events in records of 100, outcomes 60 s of event time late"
$RUNWAY generate --models 50 --rate 0 --events 2700000 --label-delay fixed \
  --label-delay-ms 60000 --unlabeled-share 0.2 --early-share 0 --duplicate-share 0 \
  --malformed-share 0 --event-rate 20000 --no-progress
mkdir -p "var/$run"
$RUNWAY worker -l info >"var/$run/worker.log" 2>&1 &
worker=$!
trap 'kill -9 $worker 2>/dev/null || true; kill -CONT $broker 2>/dev/null || true' EXIT
sleep 25
echo "$(date +%T) before the freeze: lag, rate = $(lag)"
kill -STOP "$broker"
echo "$(date +%T) broker frozen for 60 s"
sleep 60
kill -CONT "$broker"
echo "$(date +%T) broker back"
for _ in $(seq 1 8); do
  sleep 10
  echo "$(date +%T) lag, rate = $(lag)   /health: $(curl -s -m 2 localhost:$RUNWAY_WEB_PORT/health | cut -c1-60)"
done
kill -TERM "$worker"
for i in $(seq 1 60); do
  if ! kill -0 "$worker" 2>/dev/null; then echo "worker stopped ${i} s after SIGTERM"; exit 0; fi
  sleep 1
done
echo "worker still running 60 s after SIGTERM (log: var/$run/worker.log)"
