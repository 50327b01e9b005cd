#!/usr/bin/env bash
# Starts RabbitMQ, Redis and PostgreSQL on this machine when one is down (local installs,
# not Docker: for Docker use `docker compose up -d rabbitmq redis postgres`), restarts a
# local RabbitMQ that runs but answers no client, and enables the RabbitMQ plugins the
# project needs. Safe to run again. Names (rabbitmq, redis, postgres) limit it to those
# services; the default is all three.
set -euo pipefail

say() { echo "services: $*"; }

# Runs "$2..." for at most $1 seconds where coreutils' timeout is installed.
bounded() {
  if command -v timeout >/dev/null; then timeout "$@"; else shift; "$@"; fi
}

# The broker's first answer to a client: send the AMQP protocol header and read the first
# byte of its Connection.Start frame (frame type 1) within 5 s. A node can answer `ping` and
# still never get this far: RabbitMQ 3.10 takes a file handle for each new connection and
# waits for one without a deadline, so a node whose file-handle cache is exhausted or stuck
# accepts TCP connections and leaves every client waiting.
amqp_answers() {
  bounded 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"${RABBITMQ_NODE_PORT:-5672}"' || exit 1
    printf "AMQP\x00\x00\x09\x01" >&3
    IFS= read -r -t 5 -N 1 -u 3 first && [ "$first" = $'"'"'\x01'"'"' ]' 2>/dev/null
}

# The local node's Erlang VM, from the pid file the node writes beside its data (Debian and
# RPM packages), if that process is still the node's: the nodes of `npm run cluster` name
# themselves in RABBITMQ_NODENAME and keep their pid files elsewhere.
rabbitmq_pid() {
  local f pid named
  for f in /var/lib/rabbitmq/mnesia/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = beam.smp ] || continue
    named=$( (tr '\0' '\n' <"/proc/$pid/environ" | sed -n 's/^RABBITMQ_NODENAME=//p') 2>/dev/null || true)
    [ -z "$named" ] || [ "$named" = "$(basename "$f" .pid)" ] || continue
    echo "$pid"
    return 0
  done
  return 0
}

# Whether the node answers clients, waiting for a node that is starting: "down" (no node
# answers ping, and none is starting), "up" (it answers an AMQP handshake), or "stuck" (its VM
# runs but it does not answer ping within 30 s, does not finish booting within 120 s, or does
# not answer the handshake). $1 = starting when this script has just started it.
rabbitmq_state() {
  local deadline=$((SECONDS + 30))
  until bounded 15 rabbitmq-diagnostics -q ping --timeout 10 >/dev/null 2>&1; do
    if [ "${1:-}" != starting ] && [ -z "$(rabbitmq_pid)" ]; then echo down; return; fi
    if [ $SECONDS -ge $deadline ]; then echo stuck; return; fi
    sleep 1
  done
  if bounded 130 rabbitmqctl -q await_startup --timeout 120 >/dev/null 2>&1 && amqp_answers; then echo up; else echo stuck; fi
}

stop_rabbitmq() {
  bounded 20 rabbitmqctl -q shutdown >/dev/null 2>&1 || true
  local pid
  pid=$(rabbitmq_pid)
  [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do [ -z "$(rabbitmq_pid)" ] && return; sleep 0.2; done
  say "RabbitMQ (pid $pid) would not stop"
  exit 1
}

start_rabbitmq() {
  command -v rabbitmq-server >/dev/null || { say "RabbitMQ is down and not installed here"; exit 1; }
  if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
    # The packaged rabbitmq-server switches to the rabbitmq user with su, whose PAM limits
    # set the open-files limit to 1,024: RabbitMQ then allows about 830 sockets and queue
    # files in all. Start it as that user with the limit raised to the hard one.
    su rabbitmq -s /bin/sh -c "ulimit -n \"\$(ulimit -Hn)\"; exec $(command -v rabbitmq-server) -detached"
  else
    rabbitmq-server -detached
  fi
}

rabbitmq() {
  local state
  state=$(rabbitmq_state)
  if [ "$state" != up ]; then
    if [ "$state" = stuck ] && [ -n "$(rabbitmq_pid)" ]; then
      say "RabbitMQ is running but does not answer clients: restarting it"
      stop_rabbitmq
    elif [ "$state" = stuck ]; then
      say "RabbitMQ answers no client and its process is not one this script can restart (see /var/log/rabbitmq)"
      exit 1
    else
      say "starting RabbitMQ"
    fi
    start_rabbitmq
    [ "$(rabbitmq_state starting)" = up ] || { say "RabbitMQ started but does not answer clients (see /var/log/rabbitmq)"; exit 1; }
  fi
  rabbitmq-plugins -q enable rabbitmq_consistent_hash_exchange rabbitmq_management >/dev/null
  say "RabbitMQ is up ($(rabbitmqctl -q version))"
}

redis() {
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    command -v redis-server >/dev/null || { say "Redis is down and not installed here"; exit 1; }
    say "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null
  say "Redis is up"
}

postgres() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    command -v pg_ctlcluster >/dev/null || { say "PostgreSQL is down and not installed here"; exit 1; }
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
    for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  fi
  pg_isready -q -h 127.0.0.1 -p 5432
  say "PostgreSQL is up"
}

services=("$@")
[ ${#services[@]} -gt 0 ] || services=(rabbitmq redis postgres)
for s in "${services[@]}"; do
  case "$s" in
    rabbitmq | redis | postgres) ;;
    *) echo "services: unknown service \"$s\" (known: rabbitmq, redis, postgres)" >&2; exit 2 ;;
  esac
done
for s in "${services[@]}"; do "$s"; done
