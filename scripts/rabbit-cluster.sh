#!/usr/bin/env bash
# A throwaway 3-node RabbitMQ cluster on this machine, from the installed RabbitMQ, for
# trying and testing failover (e2e/cluster_test.go) without Docker.
#
#   scripts/rabbit-cluster.sh up            start the nodes, join them, print RABBITMQ_URL
#   scripts/rabbit-cluster.sh down          stop the nodes and delete everything under the dir
#   scripts/rabbit-cluster.sh status        which nodes run, and the cluster's running nodes
#   scripts/rabbit-cluster.sh url           the comma-separated RABBITMQ_URL
#   scripts/rabbit-cluster.sh start-node N  start node N (1..3) again; it rejoins the cluster
#   scripts/rabbit-cluster.sh stop-node N   stop node N gracefully
#   scripts/rabbit-cluster.sh kill-node N   SIGKILL node N's Erlang VM (a crashed node)
#   scripts/rabbit-cluster.sh pid N         node N's OS pid
#   scripts/rabbit-cluster.sh ctl N ARGS…   rabbitmqctl against node N (e.g. list_queues name leader)
#
# It never touches the default broker (rabbit@localhost on 5672): the nodes have their
# own names (mtm-c1@localhost…), ports, data directories, Erlang cookie and even their
# own epmd (on MTM_CLUSTER_EPMD_PORT, so `down` can stop it without affecting anyone),
# and every rabbitmqctl call names its node with -n and runs with the cluster's
# environment. As root the nodes run as root with HOME set to the cluster directory
# (where the cookie is): the distribution's wrappers would switch to the rabbitmq user
# and its cookie.
#
# Settings (environment):
#   MTM_CLUSTER_DIR        data, logs, cookie           [/tmp/mtm-rabbit-cluster]
#   MTM_CLUSTER_AMQP_BASE  node N's AMQP port is BASE+N [5680: 5681..5683]
#   MTM_CLUSTER_MGMT_BASE  management API port BASE+N   [15680: 15681..15683]
#   MTM_CLUSTER_DIST_BASE  Erlang distribution BASE+N   [25680: 25681..25683]
#   MTM_CLUSTER_EPMD_PORT  the cluster's own epmd       [4380]
#   MTM_CLUSTER_WAIT       seconds `up`/`start-node` wait for the nodes [120]
#   RABBITMQ_SBIN          where rabbitmq-server and rabbitmqctl are [/usr/lib/rabbitmq/bin]
set -euo pipefail

DIR=${MTM_CLUSTER_DIR:-/tmp/mtm-rabbit-cluster}
AMQP_BASE=${MTM_CLUSTER_AMQP_BASE:-5680}
MGMT_BASE=${MTM_CLUSTER_MGMT_BASE:-15680}
DIST_BASE=${MTM_CLUSTER_DIST_BASE:-25680}
EPMD_PORT=${MTM_CLUSTER_EPMD_PORT:-4380}
WAIT=${MTM_CLUSTER_WAIT:-120}
SBIN=${RABBITMQ_SBIN:-/usr/lib/rabbitmq/bin}
NODES=(1 2 3)
if [ "$EPMD_PORT" = 4369 ]; then
	# `down` stops the cluster's epmd: it must never be the one the default broker uses.
	echo "rabbit-cluster: MTM_CLUSTER_EPMD_PORT must not be 4369 (the default broker's epmd)" >&2
	exit 2
fi

say() { echo "rabbit-cluster: $*" >&2; }
die() {
	say "$*"
	exit 1
}

node_name() { echo "mtm-c$1@localhost"; }
amqp_port() { echo $((AMQP_BASE + $1)); }
node_dir() { echo "$DIR/n$1"; }

# cluster_env: what every node and every CLI call of this cluster runs with. HOME holds
# the cluster's cookie; the conf env file replaces /etc/rabbitmq/rabbitmq-env.conf,
# which names the default node; ERL_EPMD_PORT is the cluster's own epmd.
cluster_env() {
	export HOME="$DIR"
	export RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf"
	export ERL_EPMD_PORT="$EPMD_PORT"
	export ERL_EPMD_ADDRESS=127.0.0.1
	unset ERL_FLAGS RABBITMQ_NODENAME RABBITMQ_NODE_PORT RABBITMQ_CONFIG_FILE
}

ctl() { # node args...
	local n=$1
	shift
	(cluster_env && "$SBIN/rabbitmqctl" -n "$(node_name "$n")" "$@")
}

# amqp_answers PORT: the node completes the first step of the AMQP handshake.
amqp_answers() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'AMQP\x00\x00\x09\x01' >&3
		[ "$(timeout 5 head -c 1 <&3 | od -An -tu1 | tr -d ' ')" = "1" ]
	) 2>/dev/null
}

# node_pid N: the OS pid of node N's Erlang VM, from its pid file, if that process is
# alive and is this node (empty otherwise). RabbitMQ sets the node name at boot, not on
# the command line: the environment the script gave the VM names it.
node_pid() {
	local f pid
	f="$(node_dir "$1")/pid"
	[ -s "$f" ] || return 0
	pid=$(tr -dc '0-9' <"$f")
	[ -n "$pid" ] || return 0
	[ -r "/proc/$pid/environ" ] || return 0
	if tr '\0' '\n' <"/proc/$pid/environ" | grep -qx -- "RABBITMQ_NODENAME=$(node_name "$1")"; then
		echo "$pid"
	fi
}

running() { [ -n "$(node_pid "$1")" ]; }

url() {
	local out="" n
	for n in "${NODES[@]}"; do
		out+="${out:+,}amqp://guest:guest@127.0.0.1:$(amqp_port "$n")/"
	done
	echo "$out"
}

# running_members: how many nodes node 1 (or the first node up) sees running in its cluster.
running_members() {
	local n
	for n in "${NODES[@]}"; do
		if running "$n"; then
			ctl "$n" -q eval 'length(rabbit_nodes:all_running()).' 2>/dev/null | tr -dc '0-9'
			return 0
		fi
	done
	echo 0
}

prepare() {
	mkdir -p "$DIR"
	if [ ! -s "$DIR/.erlang.cookie" ]; then
		(umask 077 && head -c 48 /dev/urandom | od -An -tx1 | tr -dc 'a-f0-9' | head -c 40 >"$DIR/.erlang.cookie")
		chmod 400 "$DIR/.erlang.cookie"
	fi
	echo "# the cluster's nodes and CLI read this instead of /etc/rabbitmq/rabbitmq-env.conf" >"$DIR/rabbitmq-env.conf"
	local n d
	for n in "${NODES[@]}"; do
		d=$(node_dir "$n")
		mkdir -p "$d/log"
		# guest may connect from localhost only (RabbitMQ's default, kept explicit).
		cat >"$d/rabbitmq.conf" <<-EOF
			listeners.tcp.local = 127.0.0.1:$(amqp_port "$n")
			management.tcp.ip = 127.0.0.1
			management.tcp.port = $((MGMT_BASE + n))
			loopback_users.guest = true
			log.file.level = info
			log.console = false
		EOF
		echo '[rabbitmq_management].' >"$d/enabled_plugins"
	done
}

# file_limit: as many file handles as the hard limit allows (each quorum queue member
# holds about 3; the usual soft limit of 1024 runs out at about 330 queues).
file_limit() {
	ulimit -Hn 65536 2>/dev/null || true
	ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
}

start_node() {
	local n=$1 d name
	d=$(node_dir "$n")
	name=$(node_name "$n")
	if running "$n"; then
		say "$name already running (pid $(node_pid "$n"))"
		return 0
	fi
	say "starting $name (AMQP 127.0.0.1:$(amqp_port "$n"), management :$((MGMT_BASE + n)), data $d)"
	(
		cluster_env
		file_limit
		export RABBITMQ_NODENAME="$name"
		export RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
		export RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
		export RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
		export RABBITMQ_MNESIA_BASE="$d/mnesia"
		export RABBITMQ_LOG_BASE="$d/log"
		export RABBITMQ_PID_FILE="$d/pid"
		export RABBITMQ_DIST_PORT=$((DIST_BASE + n))
		export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
		cd "$d"
		# Its own session, detached from the caller's output: a test that runs this
		# script waits for its output to close.
		exec setsid "$SBIN/rabbitmq-server" </dev/null >>"$d/log/stdout.log" 2>&1
	) &
	disown || true
}

# wait_node N: node N answers AMQP (it has booted: listeners start last).
wait_node() {
	local n=$1 i
	for ((i = 0; i < WAIT * 2; i++)); do
		if amqp_answers "$(amqp_port "$n")"; then
			return 0
		fi
		sleep 0.5
	done
	say "$(node_name "$n") did not answer AMQP on $(amqp_port "$n") within ${WAIT}s; its log:"
	tail -n 40 "$(node_dir "$n")/log/"*.log >&2 || true
	return 1
}

# join N: node N joins node 1's cluster unless it is a member already.
join() {
	local n=$1 first
	first=$(node_name 1)
	if [ "$(ctl 1 -q eval "lists:member('$(node_name "$n")', rabbit_nodes:all())." | tr -d '[:space:]')" = true ]; then
		return 0
	fi
	say "joining $(node_name "$n") to $first"
	ctl "$n" -q stop_app
	ctl "$n" -q join_cluster "$first"
	ctl "$n" -q start_app
}

wait_members() {
	local i got=0
	for ((i = 0; i < WAIT; i++)); do
		got=$(running_members)
		[ "${got:-0}" = "${#NODES[@]}" ] && return 0
		sleep 1
	done
	die "the cluster shows ${got:-0} running nodes, want ${#NODES[@]} (logs under $DIR/n*/log)"
}

up() {
	[ -x "$SBIN/rabbitmq-server" ] || die "$SBIN/rabbitmq-server not found: install rabbitmq-server or set RABBITMQ_SBIN"
	local n all=yes
	for n in "${NODES[@]}"; do
		running "$n" && amqp_answers "$(amqp_port "$n")" || all=no
	done
	if [ "$all" = yes ] && [ "$(running_members)" = "${#NODES[@]}" ]; then
		say "already up: ${#NODES[@]} running nodes"
		url
		return 0
	fi
	for n in "${NODES[@]}"; do
		if ! running "$n" && amqp_answers "$(amqp_port "$n")"; then
			die "port $(amqp_port "$n") answers AMQP but is not $(node_name "$n"): set MTM_CLUSTER_AMQP_BASE"
		fi
	done
	prepare
	for n in "${NODES[@]}"; do start_node "$n"; done
	for n in "${NODES[@]}"; do wait_node "$n"; done
	for n in "${NODES[@]:1}"; do join "$n"; done
	wait_members
	for n in "${NODES[@]}"; do wait_node "$n"; done
	say "up: ${#NODES[@]} running nodes; RABBITMQ_URL is"
	url
}

stop_node() {
	local n=$1 pid
	pid=$(node_pid "$n")
	[ -n "$pid" ] || return 0
	say "stopping $(node_name "$n") (pid $pid)"
	# With the pid file, stop returns once the VM has exited.
	ctl "$n" -q stop "$(node_dir "$n")/pid" >/dev/null 2>&1 || true
	for _ in $(seq 1 30); do
		[ -d "/proc/$pid" ] || return 0
		sleep 1
	done
	say "$(node_name "$n") did not stop within 30s: SIGKILL $pid"
	kill -9 "$pid" 2>/dev/null || true
}

kill_node() {
	local n=$1 pid
	pid=$(node_pid "$n")
	[ -n "$pid" ] || die "$(node_name "$n") is not running"
	say "SIGKILL $(node_name "$n") (pid $pid)"
	kill -9 "$pid"
	for _ in $(seq 1 50); do
		[ -d "/proc/$pid" ] || return 0
		sleep 0.1
	done
	die "pid $pid still there after SIGKILL"
}

stop_epmd() {
	(cluster_env && epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1) || true
}

down() {
	local n
	# All at once: the data is deleted anyway, and each stop takes several seconds.
	for n in "${NODES[@]}"; do stop_node "$n" & done
	wait
	stop_epmd
	case "$DIR" in
	/ | "" | "$HOME") die "refusing to delete $DIR" ;;
	esac
	rm -rf "$DIR"
	say "down: nodes stopped, $DIR removed"
}

status() {
	local n pid
	for n in "${NODES[@]}"; do
		pid=$(node_pid "$n")
		if [ -n "$pid" ]; then
			echo "$(node_name "$n") running (pid $pid), AMQP 127.0.0.1:$(amqp_port "$n") $(amqp_answers "$(amqp_port "$n")" && echo answers || echo "does not answer")"
		else
			echo "$(node_name "$n") not running"
		fi
	done
	echo "running cluster members: $(running_members)"
}

node_arg() {
	case "${1:-}" in
	1 | 2 | 3) echo "$1" ;;
	*) die "want a node number 1..3, got '${1:-}'" ;;
	esac
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
url) url ;;
start-node)
	n=$(node_arg "${2:-}")
	[ -d "$(node_dir "$n")" ] || die "no cluster under $DIR: run up first"
	start_node "$n"
	wait_node "$n"
	;;
stop-node) stop_node "$(node_arg "${2:-}")" ;;
kill-node) kill_node "$(node_arg "${2:-}")" ;;
pid) node_pid "$(node_arg "${2:-}")" ;;
ctl)
	n=$(node_arg "${2:-}")
	shift 2
	ctl "$n" "$@"
	;;
*)
	sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
