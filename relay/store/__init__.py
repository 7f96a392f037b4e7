"""The database seam: the job queue, deal links and sweep bookkeeping — the only SQL in the relay.

SQLite is the embedded default: WAL journal, ``synchronous=FULL`` (an acknowledged call survives a
crash or power loss), write transactions ``BEGIN IMMEDIATE`` under one host-wide write lock, and
handler calls stored by group commit (:mod:`relay.store.sqlite`).  PostgreSQL (several hosts):
row locks and ``FOR UPDATE SKIP LOCKED``.  The schema is managed by Alembic (``relay/migrations``).

    schema   tables and row converters        base    engines, write transactions, migrations
    queue    jobs: enqueue/claim/finish/replay links   source deal -> target deal
    sweeps   recovery sweep bookkeeping       sqlite  write lock and group commit for SQLite
    health   /healthz: a committed write, bounded in time
    records  links of companies, contacts and other records: claim, settle, lose
    portals  application sources' tokens (sealed): install, refresh claim and rotation, uninstall
    cockpit  the integrator's page: activity per source, recent transfers, hourly chart, mapping checks
    quiet    quiet sources: when each source last called, one alert per silence
"""

from __future__ import annotations

from relay.store.cockpit import CockpitMixin
from relay.store.health import HealthMixin
from relay.store.portals import PortalsMixin
from relay.store.queue import QueueMixin
from relay.store.quiet import QuietMixin
from relay.store.records import RecordsMixin
from relay.store.schema import jobs, links, metadata, sweeps
from relay.store.sweeps import SweepsMixin


class Store(QueueMixin, RecordsMixin, PortalsMixin, SweepsMixin, HealthMixin, CockpitMixin, QuietMixin):
    """Jobs, links, sweeps and the health row in one database; every method is one short transaction."""


__all__ = ["Store", "jobs", "links", "metadata", "sweeps"]
