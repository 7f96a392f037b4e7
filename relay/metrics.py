"""Prometheus metrics (``GET /metrics``; the ``prometheus-client`` package).

Counters live in each process; under gunicorn with several worker processes set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory and every process's counters are summed at
scrape time (``prometheus_client.multiprocess``).  Job gauges are read from the database at scrape
time, so they are the same whichever process answers.  Labels never carry a secret: sources are
ids, portals are ``target`` / ``source <id>``, methods are Bitrix24 method names.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

CALLS = Counter("b24relay_calls", "Calls received by the intake URLs", ["source", "kind", "answer"])
REQUESTS = Counter("b24relay_bitrix24_requests", "Requests sent to Bitrix24 portals (a batch counts once)",
                   ["portal", "method", "answer"])
PACER_WAIT = Counter("b24relay_pacer_wait_seconds", "Time spent waiting for a portal's rate limit", ["portal"])
LATENCY = Histogram("b24relay_transfer_seconds", "From the first call stored to the target write, per job",
                    ["kind"], buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 86400))


class JobsCollector(Collector):
    """Jobs by kind and state, and the age of the oldest pending sync job, from the database."""

    def __init__(self, counts: Callable[[], dict[str, dict[str, int]]], oldest: Callable[[], float | None]) -> None:
        self._counts, self._oldest = counts, oldest

    def collect(self) -> Iterator[Any]:
        jobs = GaugeMetricFamily("b24relay_jobs", "Jobs by kind and state", labels=["kind", "state"])
        for kind, states in sorted(self._counts().items()):
            for state, n in sorted(states.items()):
                jobs.add_metric([kind, state], n)
        yield jobs
        oldest = self._oldest()
        yield GaugeMetricFamily("b24relay_oldest_pending_seconds", "Age of the oldest pending sync job",
                                value=max(0.0, time.time() - oldest) if oldest else 0.0)


def exposition(store_collector: Collector) -> tuple[bytes, str]:
    """The metrics text of this process (or of all processes in multiprocess mode) plus the job gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
        registry.register(store_collector)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    registry.register(store_collector)
    return generate_latest(REGISTRY) + generate_latest(registry), CONTENT_TYPE_LATEST


def _registry_samples() -> Iterator[Any]:
    """Every sample of this process's counters (or of all processes' in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        families = registry.collect()
    else:
        families = REGISTRY.collect()
    for family in families:
        yield from family.samples


def portal_counters() -> dict[str, dict[str, float]]:
    """Per portal (``target``, ``source <id>``): Bitrix24 requests by answer (``ok``, ``503``, ``429``…)
    and ``pacer_wait`` seconds, summed over methods — for the integrator's page."""
    out: dict[str, dict[str, float]] = {}
    for sample in _registry_samples():
        if sample.name == "b24relay_bitrix24_requests_total":
            row = out.setdefault(sample.labels["portal"], {})
            row[sample.labels["answer"]] = row.get(sample.labels["answer"], 0.0) + sample.value
        elif sample.name == "b24relay_pacer_wait_seconds_total":
            row = out.setdefault(sample.labels["portal"], {})
            row["pacer_wait"] = row.get("pacer_wait", 0.0) + sample.value
    return out
