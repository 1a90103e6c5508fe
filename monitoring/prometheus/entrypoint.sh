#!/bin/sh
# Entrypoint of the compose `prometheus` service (docker-compose.yml): writes
# VISIONQ_METRICS_TOKEN, passed from the shell or .env like to the api and the workers, to
# the file prometheus.yml's `credentials_file` reads (on a tmpfs: never on disk), then runs
# Prometheus with the service's command. An empty token writes an empty file: Prometheus
# then sends an empty bearer token, which the API and the workers ignore while they have no
# token (their metrics are open). METRICS_TOKEN_FILE and PROMETHEUS_BIN exist for the tests
# (tests/deploy/test_compose_metrics_token.py); compose sets neither.
set -eu
token_file="${METRICS_TOKEN_FILE:-/run/visionq/metrics_token}"
umask 077
printf '%s' "${VISIONQ_METRICS_TOKEN:-}" >"$token_file"
exec "${PROMETHEUS_BIN:-/bin/prometheus}" "$@"
