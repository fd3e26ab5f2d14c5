#!/usr/bin/env bash
# Makes sure PostgreSQL and RabbitMQ answer on their local ports: starts the locally
# installed servers if they are stopped, else `docker compose up -d postgres rabbitmq`
# where a Docker engine answers, else says what to install. On a locally installed
# RabbitMQ it also enables the management plugin (per-tenant broker accounts use its
# HTTP API) without a restart. Idempotent.
set -euo pipefail

PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
MQ_HOST=${MQ_HOST:-127.0.0.1}
MQ_PORT=${MQ_PORT:-5672}
MQ_MGMT_PORT=${MQ_MGMT_PORT:-15672}

up() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# amqp_answers: the broker completes the first step of the AMQP handshake (an open port
# alone is not enough: a wedged broker accepts connections and never answers).
amqp_answers() {
	(
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		printf 'AMQP\x00\x00\x09\x01' >&3
		[ "$(timeout 10 head -c 1 <&3 | od -An -tu1 | tr -d ' ')" = "1" ]
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
		echo "deps: starting local RabbitMQ"
		rabbitmq-server -detached || true
	elif docker_ok; then
		echo "deps: starting RabbitMQ with docker compose"
		docker compose up -d rabbitmq
	else
		echo "deps: RabbitMQ is not running on $MQ_HOST:$MQ_PORT and neither a local install nor a Docker engine was found; install RabbitMQ (apt-get install rabbitmq-server) or Docker" >&2
		exit 1
	fi
	wait_up RabbitMQ "$MQ_HOST" "$MQ_PORT" 120
fi
if ! amqp_answers "$MQ_HOST" "$MQ_PORT"; then
	if command -v rabbitmq-server >/dev/null && pgrep -u rabbitmq beam.smp >/dev/null; then
		echo "deps: RabbitMQ accepts connections but does not answer the AMQP handshake; restarting the local broker" >&2
		# Stopped through its own control tool, never by killing processes by name: this
		# script did not start that broker and must not take down anything else.
		if ! timeout 60 rabbitmqctl stop >/dev/null 2>&1; then
			echo "deps: rabbitmqctl stop did not stop the wedged broker; stop it by hand, then run make deps again" >&2
			exit 1
		fi
		rabbitmq-server -detached || true
		wait_up RabbitMQ "$MQ_HOST" "$MQ_PORT" 120
		for _ in $(seq 1 60); do amqp_answers "$MQ_HOST" "$MQ_PORT" && break; sleep 1; done
	fi
	amqp_answers "$MQ_HOST" "$MQ_PORT" || { echo "deps: RabbitMQ on $MQ_HOST:$MQ_PORT does not answer AMQP" >&2; exit 1; }
fi
# The management API is optional (RABBITMQ_MANAGEMENT_URL): a failure here is reported,
# never fatal. `enable --online` changes the running node only, and is a no-op when the
# plugin already runs.
if ! up "$MQ_HOST" "$MQ_MGMT_PORT" && command -v rabbitmq-plugins >/dev/null && pgrep -u rabbitmq beam.smp >/dev/null; then
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
