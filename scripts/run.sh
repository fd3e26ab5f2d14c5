#!/usr/bin/env bash
# Runs the three services together with their logs prefixed by service name.
# Ctrl+C (or SIGTERM) stops all three gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."

./bin/command -migrate

# Job control puts each service in its own process group, so a terminal's Ctrl+C reaches
# only this script, which then sends each service exactly one SIGTERM (a second signal
# would make a service skip its graceful shutdown).
set -m
pids=()
start() { # name
	# Process substitution keeps $! the service's own pid. The prefixing sed ignores
	# INT/TERM so it outlives the service and no shutdown log line is lost.
	"./bin/$1" > >(trap '' INT TERM; exec sed -u "s/^/[$1] /") 2>&1 &
	pids+=($!)
}
stop() {
	trap - INT TERM
	echo "run: stopping services"
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
	exit 0
}
trap stop INT TERM

start command
start consumer
start query
echo "run: command :8080, query :8081, consumer :8082 — Ctrl+C stops all three"
# Exit (stopping the rest) as soon as any service dies.
wait -n "${pids[@]}" || true
echo "run: a service exited; stopping the others" >&2
kill -TERM "${pids[@]}" 2>/dev/null || true
wait "${pids[@]}" 2>/dev/null || true
exit 1
