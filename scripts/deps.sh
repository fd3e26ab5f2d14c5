#!/usr/bin/env bash
# Makes sure PostgreSQL and RabbitMQ answer on their local ports: starts the locally
# installed servers if they are stopped, else `docker compose up -d postgres rabbitmq`
# where a Docker engine answers, else says what to install. On a locally installed
# RabbitMQ it also enables the management plugin (per-tenant broker accounts use its
# HTTP API) without a restart. Idempotent.
#
# It never stops, restarts or kills a server: one that is running may serve others.
# A local RabbitMQ it starts gets a file limit sized for many tenants; for one already
# running it compares the limit with what MAX_TENANTS, QUEUE_TYPE and DLQ_QUEUE_TYPE
# need and, if it is too low, says how to fix it.
#
# Sourced (`source scripts/deps.sh`), it only defines its functions: tests exercise
# them with fake commands on PATH.
set -euo pipefail

PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
MQ_HOST=${MQ_HOST:-127.0.0.1}
MQ_PORT=${MQ_PORT:-5672}
MQ_MGMT_PORT=${MQ_MGMT_PORT:-15672}
# Where the broker's process limits are read from (tests point it elsewhere).
PROC_DIR=${PROC_DIR:-/proc}
# The Debian package's layout: the broker runs as this user from this home.
MQ_USER=${MQ_USER:-rabbitmq}
MQ_HOME=${MQ_HOME:-/var/lib/rabbitmq}
MQ_SERVER=${MQ_SERVER:-/usr/lib/rabbitmq/bin/rabbitmq-server}

# File limit given to a broker this script starts when the hard limit allows no more
# (or is unlimited): 65536 holds about 19,000 quorum queues.
WANT_NOFILE=65536
# Handles one quorum queue holds in RabbitMQ 3.x's file-handle cache, which may use
# about 0.9 of the process's soft file limit; classic queues hold none while idle.
HANDLES_PER_QUORUM_QUEUE=3
# Handles kept for connections (the services hold about a dozen) and the broker itself.
HANDLES_RESERVED=128

up() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# amqp_answers: the broker completes the first step of the AMQP handshake (an open port
# alone is not enough: a broker out of file handles accepts connections and never answers).
amqp_answers() {
	(
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		printf 'AMQP\x00\x00\x09\x01' >&3
		[ "$(timeout "${MQ_HANDSHAKE_TIMEOUT:-10}" head -c 1 <&3 | od -An -tu1 | tr -d ' ')" = "1" ]
	) 2>/dev/null
}

wait_up() { # name host port seconds
	for _ in $(seq 1 "$4"); do
		up "$2" "$3" && return 0
		sleep 1
	done
	echo "deps: $1 did not come up on $2:$3 within $4s" >&2
	return 1
}

docker_ok() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

# handles_per_tenant: file handles one tenant's queues hold (QUEUE_TYPE, DLQ_QUEUE_TYPE;
# defaults quorum and classic, as the services').
handles_per_tenant() {
	local n=0
	[ "${QUEUE_TYPE:-quorum}" = quorum ] && n=$((n + HANDLES_PER_QUORUM_QUEUE))
	[ "${DLQ_QUEUE_TYPE:-classic}" = quorum ] && n=$((n + HANDLES_PER_QUORUM_QUEUE))
	echo "$n"
}

# required_nofile: the soft file limit the broker needs for MAX_TENANTS tenants (default
# 1000, as the command service's): their handles plus the reserve, over 0.9.
required_nofile() {
	local handles=$((${MAX_TENANTS:-1000} * $(handles_per_tenant) + HANDLES_RESERVED))
	echo $(((handles * 10 + 8) / 9))
}

# choose_nofile HARD IS_ROOT: the limit to start the broker with. 65536, or the hard
# limit when that is higher; a user who cannot raise the hard limit gets at most it.
choose_nofile() {
	local hard=$1 root=$2
	if [ "$hard" = unlimited ]; then
		echo "$WANT_NOFILE"
	elif [ "$hard" -ge "$WANT_NOFILE" ] || [ "$root" = yes ]; then
		echo $((hard > WANT_NOFILE ? hard : WANT_NOFILE))
	else
		echo "$hard"
	fi
}

# start_nofile: the limit a broker started now gets. Raising the hard limit needs
# CAP_SYS_RESOURCE, which a container's root may lack: then it is the hard limit.
start_nofile() {
	local hard n
	hard=$(ulimit -Hn)
	n=$(choose_nofile "$hard" "$([ "$(id -u)" = 0 ] && echo yes || echo no)")
	if [ "$hard" != unlimited ] && [ "$n" -gt "$hard" ] && ! (ulimit -Hn "$n") 2>/dev/null; then
		n=$hard
	fi
	echo "$n"
}

# broker_pid: the local broker's Erlang VM, if one runs (empty otherwise).
broker_pid() { pgrep -u "$MQ_USER" beam.smp 2>/dev/null | head -n 1 || true; }

# broker_nofile PID: the running broker's soft file limit (empty if unreadable).
broker_nofile() {
	awk '/^Max open files/ { print $4 }' "$PROC_DIR/$1/limits" 2>/dev/null || true
}

# restart_hint: how to give the local broker a larger limit (never run by this script:
# stopping a broker takes it away from everyone using it).
restart_hint() {
	local n
	n=$(start_nofile)
	echo "when nobody else uses it, stop it (rabbitmqctl stop) and run make deps again: it starts the broker with a limit of $n as user $MQ_USER through setpriv (the distribution's rabbitmq-server switches users with su, which resets the limit to 1024); under systemd set LimitNOFILE=$n in a drop-in for rabbitmq-server.service instead"
}

# check_broker_limit: says whether the running local broker's file limit holds the
# configured tenant capacity. Reports only; returns 0 either way.
check_broker_limit() {
	local pid have need per fits=""
	pid=$(broker_pid)
	[ -n "$pid" ] || return 0 # not a local broker (docker compose sets ulimits itself)
	have=$(broker_nofile "$pid")
	if [ -z "$have" ]; then
		echo "deps: cannot read the RabbitMQ file limit from $PROC_DIR/$pid/limits" >&2
		return 0
	fi
	need=$(required_nofile)
	if [ "$have" = unlimited ] || [ "$have" -ge "$need" ]; then
		echo "deps: RabbitMQ file limit $have (enough for MAX_TENANTS=${MAX_TENANTS:-1000}: needs $need)"
		return 0
	fi
	per=$(handles_per_tenant)
	if [ "$per" -gt 0 ]; then
		fits=" it stops answering new connections at about $(((have * 9 / 10 - HANDLES_RESERVED) / per)) tenants."
	fi
	echo "deps: RabbitMQ runs with a file limit of $have, too low for MAX_TENANTS=${MAX_TENANTS:-1000} ($per handles a tenant with QUEUE_TYPE=${QUEUE_TYPE:-quorum}, DLQ_QUEUE_TYPE=${DLQ_QUEUE_TYPE:-classic}; needs $need):$fits Lower MAX_TENANTS, or $(restart_hint)" >&2
	return 0
}

# start_local_rabbitmq: starts the installed broker with a file limit for many tenants.
# As root it runs the broker's own start script as the broker's user through setpriv,
# after raising the limit: the distribution's wrapper would switch users with su, which
# resets the limit to the PAM default.
start_local_rabbitmq() {
	local hard root=no n
	hard=$(ulimit -Hn)
	[ "$(id -u)" = 0 ] && root=yes
	n=$(start_nofile)
	if [ "$root" = yes ] && command -v setpriv >/dev/null && [ -x "$MQ_SERVER" ]; then
		echo "deps: starting local RabbitMQ as $MQ_USER with a file limit of $n"
		(
			[ "$hard" = unlimited ] || [ "$n" -le "$hard" ] || ulimit -Hn "$n"
			ulimit -Sn "$n"
			cd "$MQ_HOME"
			HOME=$MQ_HOME exec setpriv --reuid="$MQ_USER" --regid="$MQ_USER" --init-groups "$MQ_SERVER" -detached
		) || true
	else
		echo "deps: starting local RabbitMQ with a file limit of $n"
		(ulimit -Sn "$n" && exec rabbitmq-server -detached) || true
		if [ "$root" = yes ]; then
			echo "deps: setpriv or $MQ_SERVER not found: the rabbitmq-server wrapper may reset the file limit (check it below)" >&2
		fi
	fi
}

main() {
	if ! up "$PG_HOST" "$PG_PORT"; then
		if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
			echo "deps: starting local PostgreSQL"
			for v in $(ls /etc/postgresql); do pg_ctlcluster --skip-systemctl-redirect "$v" main start || true; done
		elif docker_ok; then
			echo "deps: starting PostgreSQL with docker compose"
			docker compose up -d postgres
		else
			echo "deps: PostgreSQL is not running on $PG_HOST:$PG_PORT and neither a local install nor a Docker engine was found; install PostgreSQL (apt-get install postgresql) or Docker" >&2
			exit 1
		fi
		wait_up PostgreSQL "$PG_HOST" "$PG_PORT" 60
	fi

	if ! up "$MQ_HOST" "$MQ_PORT"; then
		if command -v rabbitmq-server >/dev/null; then
			start_local_rabbitmq
		elif docker_ok; then
			echo "deps: starting RabbitMQ with docker compose"
			docker compose up -d rabbitmq
		else
			echo "deps: RabbitMQ is not running on $MQ_HOST:$MQ_PORT and neither a local install nor a Docker engine was found; install RabbitMQ (apt-get install rabbitmq-server) or Docker" >&2
			exit 1
		fi
		wait_up RabbitMQ "$MQ_HOST" "$MQ_PORT" 120
		for _ in $(seq 1 60); do amqp_answers "$MQ_HOST" "$MQ_PORT" && break; sleep 1; done
	fi
	check_broker_limit
	if ! amqp_answers "$MQ_HOST" "$MQ_PORT"; then
		echo "deps: RabbitMQ on $MQ_HOST:$MQ_PORT accepts connections but does not answer the AMQP handshake, most likely because it ran out of file handles (too many queues for its file limit: rabbitmqctl eval 'file_handle_cache:info([total_limit,total_used]).' shows it). Existing connections may still work, so this script does not restart it: delete queues nobody needs, or $(restart_hint)" >&2
		exit 1
	fi
	# The management API is optional (RABBITMQ_MANAGEMENT_URL): a failure here is reported,
	# never fatal. `enable --online` changes the running node only, and is a no-op when the
	# plugin already runs.
	if ! up "$MQ_HOST" "$MQ_MGMT_PORT" && command -v rabbitmq-plugins >/dev/null && [ -n "$(broker_pid)" ]; then
		echo "deps: enabling the RabbitMQ management plugin"
		if rabbitmq-plugins enable --online rabbitmq_management >/dev/null; then
			for _ in $(seq 1 60); do up "$MQ_HOST" "$MQ_MGMT_PORT" && break; sleep 1; done
		fi
	fi
	if up "$MQ_HOST" "$MQ_MGMT_PORT"; then
		echo "deps: RabbitMQ management API $MQ_HOST:$MQ_MGMT_PORT is up"
	else
		echo "deps: RabbitMQ management API is not answering on $MQ_HOST:$MQ_MGMT_PORT (needed only with RABBITMQ_MANAGEMENT_URL): rabbitmq-plugins enable rabbitmq_management" >&2
	fi
	echo "deps: PostgreSQL $PG_HOST:$PG_PORT and RabbitMQ $MQ_HOST:$MQ_PORT are up"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
