#!/usr/bin/env bash
# Ingest measured from outside the process, as issue 15 measures it: wrk against a fresh
# `sightline serve` (rate limits off), 500-event batches from 4 connections, then single
# events from 64; each phase ends with the service's peak resident memory. Needs wrk
# (`apt-get install wrk`) and a release build (`./dev cargo build --release`).
#   scripts/wrk-ingest.sh            # 60 s of batches, 30 s of single events
#   BATCH_SECS=20 SINGLE_SECS=10 scripts/wrk-ingest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/sightline-target}/release/sightline}
PORT=${PORT:-18077}
DIR=$(mktemp -d)
export SIGHTLINE_DATA_DIR=$DIR SIGHTLINE_LIMIT_BATCH=off SIGHTLINE_LIMIT_EVENTS=off SIGHTLINE_LOG_LEVEL=warn
TOK=$("$BIN" keys create --tenant default --role ingest --name wrk 2>/dev/null | sed -n 's/.*"key": "\(.*\)".*/\1/p')
export TOK
"$BIN" serve --listen "127.0.0.1:$PORT" >"$DIR/serve.log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
echo "== 500-event batches, 4 connections"
wrk -t2 -c4 -d"${BATCH_SECS:-60}s" --latency -s scripts/wrk/batch.lua "http://127.0.0.1:$PORT"
grep VmHWM "/proc/$PID/status"
echo "== single events, 64 connections"
wrk -t2 -c64 -d"${SINGLE_SECS:-30}s" --latency -s scripts/wrk/single.lua "http://127.0.0.1:$PORT"
grep VmHWM "/proc/$PID/status"
