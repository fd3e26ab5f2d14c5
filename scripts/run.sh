#!/usr/bin/env bash
# Runs the three services and the console together with their logs prefixed by service
# name. Ctrl+C (or SIGTERM) stops all of them gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."

./bin/command -migrate

# Job control puts each service in its own process group, so a terminal's Ctrl+C reaches
# only this script, which then sends each service exactly one SIGTERM (a second signal
# would make a service skip its graceful shutdown).
set -m
pids=()
start() { # name [VAR=value...]
	local name=$1
	shift
	# Process substitution keeps $! the service's own pid. The prefixing sed ignores
	# INT/TERM so it outlives the service and no shutdown log line is lost.
	env "$@" "./bin/$name" > >(trap '' INT TERM; exec sed -u "s/^/[$name] /") 2>&1 &
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

# The command manages per-tenant broker accounts and the DLQ bound through the local
# management API when it answers (scripts/deps.sh enables it); only the command gets
# the administrator's URL.
mgmt=()
if [ -z "${RABBITMQ_MANAGEMENT_URL+x}" ] && curl -fsS -o /dev/null -u guest:guest http://127.0.0.1:15672/api/overview 2>/dev/null; then
	mgmt=(RABBITMQ_MANAGEMENT_URL=http://guest:guest@127.0.0.1:15672)
fi
start command "${mgmt[@]}"
start consumer
start query
# The console reaches the services on their default ports (COMMAND_URL, QUERY_URL).
start console
echo "run: command :8080, query :8081, consumer :8082, console http://localhost:8083 — Ctrl+C stops them all"
# Exit (stopping the rest) as soon as any service dies.
wait -n "${pids[@]}" || true
echo "run: a service exited; stopping the others" >&2
kill -TERM "${pids[@]}" 2>/dev/null || true
wait "${pids[@]}" 2>/dev/null || true
exit 1
