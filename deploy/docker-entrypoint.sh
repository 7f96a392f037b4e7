#!/bin/sh
# Entry point of the b24relay image: start every run with an empty PROMETHEUS_MULTIPROC_DIR
# (prometheus-client's multiprocess mode needs it wiped between runs; `docker restart` keeps the
# container's files), then run the command: `relay serve` by default, or `relay worker`, `relay jobs`...
set -eu
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete
fi
exec "$@"
