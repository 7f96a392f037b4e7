"""Recovery sweep: find deals whose events Bitrix24 never delivered, and queue them.

Bitrix24 never re-sends an event its handler missed, and ``ONCRMDEALUPDATE`` does not fire when a
deal moves to another funnel (``api-reference/events/index.md``,
``api-reference/crm/deals/events/index.md``).  So each source is asked, with paged ``crm.deal.list``
calls through the portal's pacer, for deals in the trigger stages modified since the last watermark
(minus an overlap margin); a deal is queued when the relay has no link for it or last relayed an
older ``DATE_MODIFY``; so is every deal whose last job gave up after a long outage, whatever its
date.  The sync job then re-reads it and writes only if its mapped content changed.
The watermark is the newest ``DATE_MODIFY`` seen, in the portal's own clock and format.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from relay.config import RelayConfig
from relay.mapping.deal import relayed_mark
from relay.portal.client import PortalClient
from relay.portal.protocol import MAX_BATCH, Command
from relay.store import Store

log = logging.getLogger(__name__)
PAGE = 50  # crm.deal.list pages are 50 deals — api-reference/crm/deals/crm-deal-list.md


@dataclass(frozen=True)
class SweepResult:
    """What one sweep of one source saw and did."""

    source_id: str
    since: str
    seen: int
    queued: int
    watermark: str | None

    def summary(self) -> str:
        if not self.since:  # a 1C base: only records whose jobs gave up are queued again
            return f"{self.queued} record(s) whose jobs gave up queued again"
        return f"since {self.since}: {self.seen} deal(s) in trigger stages, {self.queued} queued"


def _parse(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def since(watermark: str | None, overlap: float, lookback: float, now: datetime) -> str:
    """The ``>=DATE_MODIFY`` bound: watermark − overlap, or now − lookback for a first sweep."""
    mark = _parse(watermark) if watermark else None
    start = mark - timedelta(seconds=overlap) if mark else now - timedelta(seconds=lookback)
    return start.isoformat(timespec="seconds")


def _newest(a: str | None, b: str | None) -> str | None:
    pa, pb = (_parse(a) if a else None), (_parse(b) if b else None)
    if pa is None:
        return b if pb is not None else a
    if pb is None:
        return a
    return b if pb > pa else a


def _page(flt: Mapping[str, Any], start: int, select: Sequence[str] = ()) -> Command:
    return Command("crm.deal.list", {"filter": dict(flt), "select": ["ID", "DATE_MODIFY", "STAGE_ID", *select],
                                     "order": {"ID": "ASC"}, "start": start})


def list_all(client: PortalClient, flt: Mapping[str, Any], select: Sequence[str] = (),
             progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Every deal matching ``flt``: the first page tells ``total``; the other pages go 50 to a
    ``batch`` (2,500 deals per request) — ``settings/how-to-call-rest-api/list-methods-pecularities.md``.
    ``progress(read, total)`` is told after each request."""
    first = client.call_raw("crm.deal.list", _page(flt, 0, select).params)
    deals = list(first.get("result") or [])
    total, nxt = first.get("total"), first.get("next")
    if not isinstance(nxt, int) or not isinstance(total, int):
        return deals
    starts = list(range(nxt, total, PAGE))
    for i in range(0, len(starts), MAX_BATCH):
        if progress is not None:
            progress(len(deals), total)
        cmds = {f"p{n}": _page(flt, start, select) for n, start in enumerate(starts[i:i + MAX_BATCH])}
        reply = client.batch(cmds, write=False)
        for name in cmds:
            deals.extend(reply.get(name) or [])
    return deals


def sweep_source(config: RelayConfig, store: Store, client: PortalClient, source_id: str, *,
                 force: bool = False, now: datetime | None = None,
                 progress: Callable[[int, int], None] | None = None) -> SweepResult | None:
    """Sweep one source if its sweep is due (or ``force``); None when another worker has it."""
    tuning = config.file.sweep
    taken, watermark = store.claim_sweep(source_id, tuning.interval, force=force)
    if not taken:
        return None
    spec = config.mappings[source_id]
    bound = since(watermark, tuning.overlap, tuning.lookback, now or datetime.now(UTC))
    flt: dict[str, Any] = {">=DATE_MODIFY": bound}
    if spec.trigger and spec.trigger.stages:
        flt["@STAGE_ID"] = list(spec.trigger.stages)
    # copies a relay made here (ORIGINATOR_ID b24relay:…, relayed_marks) are never relayed back: not due
    listed = list_all(client, flt, ["ORIGINATOR_ID", *spec.relayed_marks], progress)
    seen = {str(d["ID"]): str(d.get("DATE_MODIFY") or "") for d in listed if relayed_mark(d, spec) is None}
    links = store.links([(source_id, deal_id) for deal_id in seen])
    newest = watermark
    due = []
    for deal_id, modified in seen.items():
        newest = _newest(newest, modified or None)
        link = links.get((source_id, deal_id))
        if link is None or link.state != "linked" or link.source_modified != modified:
            due.append(deal_id)
    # deals whose jobs gave up (an outage longer than worker.retry_for) come back whatever their date
    due += [d for d in store.gave_up_deals(source_id) if d not in seen]
    store.enqueue_many(source_id, due, "SWEEP")
    result = SweepResult(source_id, bound, len(seen), len(due), newest)
    store.finish_sweep(source_id, newest, result.summary())
    log.info("sweep of %s %s", source_id, result.summary())
    return result


def sweep_all(config: RelayConfig, store: Store, clients: Mapping[str, PortalClient], *,
              force: bool = False) -> list[SweepResult]:
    """Sweep every source that is due (or all of them with ``force``)."""
    results = []
    for source in config.file.sources:
        res = sweep_source(config, store, clients[source.id], source.id, force=force)
        if res is not None:
            results.append(res)
    for base in config.file.onec:
        res = sweep_onec(config, store, base.id, force=force)
        if res is not None:
            results.append(res)
    return results


def sweep_onec(config: RelayConfig, store: Store, base_id: str, *, force: bool = False) -> SweepResult | None:
    """A 1C base has nothing to list (its calls carry the data): its sweep queues again the records
    whose jobs gave up (an outage longer than ``worker.retry_for``), with the data they carry."""
    taken, watermark = store.claim_sweep(base_id, config.file.sweep.interval, force=force)
    if not taken:
        return None
    again = [store.replay(job_id) for job_id in store.gave_up_jobs(base_id)]
    result = SweepResult(base_id, "", 0, len(again), watermark)
    store.finish_sweep(base_id, watermark, result.summary())
    if again:
        log.info("sweep of 1C base %s %s", base_id, result.summary())
    return result
