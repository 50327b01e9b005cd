#!/usr/bin/env bash
# Starts RabbitMQ, Redis and PostgreSQL on this machine when one is down (local installs,
# not Docker: for Docker use `docker compose up -d rabbitmq redis postgres`), and enables
# the RabbitMQ plugins the project needs. Safe to run again. Names (rabbitmq, redis,
# postgres) limit it to those services; the default is all three.
set -euo pipefail

say() { echo "services: $*"; }

rabbitmq() {
  if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    command -v rabbitmq-server >/dev/null || { say "RabbitMQ is down and not installed here"; exit 1; }
    say "starting RabbitMQ"
    rabbitmq-server -detached
    # The node registers with epmd a moment after -detached returns; until then await_startup fails.
    for _ in $(seq 1 240); do rabbitmqctl -q ping >/dev/null 2>&1 && break; sleep 0.5; done
  fi
  rabbitmqctl -q await_startup --timeout 120 >/dev/null
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
