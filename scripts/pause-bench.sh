#!/usr/bin/env bash
# Runs a command with every other `multiret` process stopped (SIGSTOP), then resumes them:
# benchmarks on this 2-core machine while a long experiment runs in the background.
#   bash scripts/pause-bench.sh CMD...
pids=$(pgrep -x multiret || true)
[ -n "$pids" ] && kill -STOP $pids
trap '[ -n "$pids" ] && kill -CONT $pids' EXIT
sleep 1
"$@"
