"""Jobs' work: read the source deals, transform, upsert on the target exactly once; then notify.

Several ready jobs are handled together, so each step costs one request for many deals:

1. **read** — one source ``batch`` per source portal: ``crm.deal.get`` + ``crm.deal.productrows.get``
   per deal (25 deals per batch: a batch holds 50 commands — ``batch.md``);
2. **plan** — trigger stage check, mapping transform, link lookup in the store; a linked deal whose
   fingerprint is unchanged needs no write at all;
3. **find** — only for deals whose earlier create may have reached the target (link ``creating``):
   ``crm.deal.list`` by the link stamp, so such a create is adopted, never repeated;
4. **write** — one target ``batch``: ``crm.deal.add`` then ``crm.deal.productrows.set`` with
   ``id=$result[...]`` for new deals, ``crm.deal.update`` + ``productrows.set`` for linked ones.

A failing command (``result_error``) only fails its own deal.  Notifications run as separate
``notify`` jobs (:meth:`Pipeline.notify`), so a failing comment never repeats a target write.
The pipeline only *reads* the store, except for the ``creating`` mark written before a create is
sent; link changes travel on each :class:`Outcome` and the worker records a whole round in one
transaction (a crash before that leaves ``creating`` marks, which the next attempt resolves).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from relay import notices
from relay.b24 import MAX_BATCH, BatchReply, Command
from relay.client import PortalClient
from relay.config import RelayConfig, SourceConfig
from relay.errors import (
    NetworkError,
    NotFound,
    OperationTimeLimit,
    PermanentError,
    QueryLimitExceeded,
    RelayError,
    ReplyLost,
    TransientError,
    ValidationError,
)
from relay.mapping import MappingSpec, TargetDeal, fingerprint, in_trigger, transform
from relay.models import Job
from relay.phpquery import Ref
from relay.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
ORIGIN_LINK = "ORIGIN_ID"
ORIGINATOR = "b24relay"
#: errors proving a request never ran: refused by the limits, or the connection never opened
NOT_EXECUTED = (QueryLimitExceeded, OperationTimeLimit, NetworkError)


@dataclass
class Outcome:
    """How one job ended this round; the worker turns it into a queue transition."""

    job: Job
    status: str = "done"  # done | skipped | failed
    outcome: str = ""
    target_deal_id: str | None = None
    error: BaseException | None = None
    notify: dict[str, Any] | None = None
    deal: dict[str, Any] | None = None  # the source deal as read (for failure notices)
    payload: dict[str, Any] | None = None  # notify jobs: payload with the parts already done
    link: tuple[str, str | None, str | None] | None = None  # (target id, fingerprint, source DATE_MODIFY)
    forget_creating: bool = False  # the target certainly created nothing: drop the "creating" mark


@dataclass
class _Work:
    job: Job
    source: SourceConfig
    spec: MappingSpec
    result: Outcome
    rows: list[dict[str, Any]] = field(default_factory=list)
    target: TargetDeal | None = None
    print: str | None = None
    target_id: str | None = None
    action: str = ""  # create | update | find

    @property
    def open(self) -> bool:
        return self.result.status == "done" and not self.result.outcome

    def fail(self, error: BaseException) -> None:
        self.result.status, self.result.error = "failed", error


def _modified(deal: Mapping[str, Any]) -> str | None:
    value = deal.get("DATE_MODIFY")
    return str(value) if value else None


def _pack(items: Sequence[T], weight: Callable[[T], int], limit: int = MAX_BATCH) -> Iterator[list[T]]:
    """Consecutive groups whose total weight (batch commands) stays within ``limit``."""
    group: list[T] = []
    used = 0
    for item in items:
        w = weight(item)
        if group and used + w > limit:
            yield group
            group, used = [], 0
        group.append(item)
        used += w
    if group:
        yield group


class Pipeline:
    """Runs sync and notify jobs against the configured portals."""

    def __init__(self, config: RelayConfig, store: Store, target: PortalClient,
                 sources: Mapping[str, PortalClient]) -> None:
        self.config, self.store, self.target, self.sources = config, store, target, sources
        self.target_portal = urlsplit(config.target.webhook_url.get_secret_value()).hostname or "target"

    # --- sync --------------------------------------------------------------------------------

    def sync(self, jobs: Sequence[Job], renew: Callable[[Sequence[Job]], set[int]] | None = None) -> list[Outcome]:
        """Relay the deals of these sync jobs; one outcome per job, in order.

        ``renew`` extends the jobs' leases just before anything is written to the target and says
        which are still ours: a job whose lease was lost (another worker took it over) writes nothing.
        """
        works: list[_Work] = []
        for job in jobs:
            source = self.config.source(job.source_id)
            outcome = Outcome(job=job)
            if source is None:
                outcome.status, outcome.error = "failed", PermanentError(f"source {job.source_id!r} is no longer configured")
                works.append(_Work(job, None, None, outcome))  # type: ignore[arg-type]
                continue
            works.append(_Work(job, source, self.config.mappings[source.id], outcome))
        self._read([w for w in works if w.open])
        self._plan([w for w in works if w.open])
        if renew is not None:
            pending = [w for w in works if w.open and w.action]
            mine = renew([w.job for w in pending])
            for w in pending:
                if w.job.id not in mine:
                    w.fail(TransientError("lease lost: another worker took this job over"))
        self._find([w for w in works if w.open and w.action == "find"])
        self._write([w for w in works if w.open and w.action in ("create", "update")])
        return [w.result for w in works]

    def _read(self, works: Sequence[_Work]) -> None:
        by_source: dict[str, list[_Work]] = defaultdict(list)
        for w in works:
            by_source[w.source.id].append(w)
        for source_id, group in by_source.items():
            for chunk in _pack(group, lambda w: 2 if w.spec.products.enabled else 1):
                cmds: dict[str, Command] = {}
                for i, w in enumerate(chunk):
                    cmds[f"d{i}"] = Command("crm.deal.get", {"id": w.job.deal_id})
                    if w.spec.products.enabled:
                        cmds[f"r{i}"] = Command("crm.deal.productrows.get", {"id": w.job.deal_id})
                try:
                    reply = self.sources[source_id].batch(cmds, write=False)
                except RelayError as exc:
                    for w in chunk:
                        w.fail(exc)
                    continue
                for i, w in enumerate(chunk):
                    self._take_read(w, reply, i)

    def _take_read(self, w: _Work, reply: BatchReply, i: int) -> None:
        try:
            deal = reply.get(f"d{i}")
            rows = reply.get(f"r{i}") if w.spec.products.enabled else []
        except NotFound:
            w.result.status, w.result.outcome = "skipped", "source deal not found (deleted?)"
            return
        except RelayError as exc:
            w.fail(exc)
            return
        if not isinstance(deal, dict) or not isinstance(rows, list):
            w.fail(ValidationError("", "unexpected shape of crm.deal.get / productrows.get result", method="batch"))
            return
        w.result.deal, w.rows = deal, rows

    def _plan(self, works: Sequence[_Work]) -> None:
        known = self.store.links([(w.source.id, w.job.deal_id) for w in works])
        for w in works:
            deal = w.result.deal or {}
            if not in_trigger(deal, w.spec):
                w.result.status = "skipped"
                w.result.outcome = f"stage {deal.get('STAGE_ID')!s} is not a trigger stage"
                continue
            ctx = {"id": w.source.id, "domain": w.source.domain or "", "member_id": w.source.member_id or ""}
            try:
                w.target = transform(deal, w.rows, w.spec, ctx)
            except PermanentError as exc:
                w.fail(exc)
                continue
            w.print = fingerprint(w.target)
            link = known.get((w.source.id, w.job.deal_id))
            if link is None:
                w.action = "create"
            elif link.state == "creating" or not link.target_deal_id:
                w.action = "find"
            elif link.fingerprint == w.print:
                w.result.outcome, w.result.target_deal_id = "unchanged", link.target_deal_id
                w.result.link = (link.target_deal_id, w.print, _modified(deal))
            else:
                w.action, w.target_id = "update", link.target_deal_id

    # --- link stamp --------------------------------------------------------------------------

    def _stamp(self, w: _Work) -> dict[str, str]:
        if w.spec.link_field == ORIGIN_LINK:
            return {"ORIGINATOR_ID": f"{ORIGINATOR}:{w.source.link_prefix}", "ORIGIN_ID": w.job.deal_id}
        return {w.spec.link_field: f"{w.source.link_prefix}:{w.job.deal_id}"}

    def _find(self, works: Sequence[_Work]) -> None:
        for chunk in _pack(works, lambda _w: 1):
            cmds = {f"f{i}": Command("crm.deal.list", {
                "filter": {f"={k}": v for k, v in self._stamp(w).items()},
                "select": ["ID", *self._stamp(w)], "order": {"ID": "ASC"}}) for i, w in enumerate(chunk)}
            try:
                reply = self.target.batch(cmds, write=False)
            except RelayError as exc:
                for w in chunk:
                    w.fail(exc)
                continue
            for i, w in enumerate(chunk):
                try:
                    found = reply.get(f"f{i}")
                except RelayError as exc:
                    w.fail(exc)
                    continue
                stamp = self._stamp(w)
                # never trust the filter alone: an unknown filter field is silently ignored
                hits = [d for d in found or [] if all(str(d.get(k, "")) == v for k, v in stamp.items())]
                if hits:
                    if len(hits) > 1:
                        log.warning("deal %s/%s has %d target deals; using the first", w.source.id, w.job.deal_id, len(hits))
                    w.action, w.target_id = "update", str(hits[0]["ID"])
                    log.info("adopted target deal %s for %s/%s", w.target_id, w.source.id, w.job.deal_id)
                else:
                    w.action = "create"

    # --- write -------------------------------------------------------------------------------

    def _commands(self, w: _Work, i: int) -> dict[str, Command]:
        assert w.target is not None
        cmds: dict[str, Command] = {}
        if w.action == "create":
            fields = {**w.target.fields, **self._stamp(w)}
            cmds[f"a{i}"] = Command("crm.deal.add", {"fields": fields, "params": {"REGISTER_SONET_EVENT": "Y"}})
            deal_ref: Any = Ref(f"a{i}")
        else:
            fields = {**w.target.update_fields, **self._stamp(w)}
            cmds[f"u{i}"] = Command("crm.deal.update", {"id": w.target_id, "fields": fields})
            deal_ref = w.target_id
        if w.target.rows is not None:
            cmds[f"p{i}"] = Command("crm.deal.productrows.set", {"id": deal_ref, "rows": w.target.rows})
        return cmds

    def _write(self, works: Sequence[_Work]) -> None:
        creates = [(w.source.id, w.job.deal_id) for w in works if w.action == "create"]
        if creates:
            self.store.mark_creating(creates)
        for chunk in _pack(works, lambda w: len(self._commands(w, 0))):
            cmds: dict[str, Command] = {}
            for i, w in enumerate(chunk):
                cmds.update(self._commands(w, i))
            try:
                reply = self.target.batch(cmds, write=True)
            except RelayError as exc:
                never_ran = isinstance(exc, NOT_EXECUTED) and not isinstance(exc, ReplyLost)
                for w in chunk:
                    w.result.forget_creating = never_ran and w.action == "create"
                    w.fail(exc)
                continue
            for i, w in enumerate(chunk):
                self._take_write(w, reply, i)

    def _take_write(self, w: _Work, reply: BatchReply, i: int) -> None:
        assert w.target is not None
        if w.action == "create":
            try:
                w.target_id = str(reply.get(f"a{i}"))
            except RelayError as exc:
                w.result.forget_creating = True  # the target refused: nothing exists
                w.fail(exc)
                return
        else:
            try:
                reply.get(f"u{i}")
            except NotFound:
                w.fail(NotFound("", f"target deal #{w.target_id} no longer exists on the target portal "
                                    f"(run `relay unlink {w.source.id} {w.job.deal_id}` to create it again)",
                                method="crm.deal.update"))
                return
            except RelayError as exc:
                w.fail(exc)
                return
        assert w.target_id is not None
        try:
            if w.target.rows is not None:
                reply.get(f"p{i}")
        except RelayError as exc:
            w.result.link = (w.target_id, None, None)  # the deal exists; its rows must be written again
            w.result.target_deal_id = w.target_id
            w.fail(exc)
            return
        w.result.link = (w.target_id, w.print, _modified(w.result.deal or {}))
        action = "created" if w.action == "create" else "updated"
        w.result.outcome, w.result.target_deal_id = action, w.target_id
        notify = self.config.file.notify
        w.result.notify = notices.success_notice(
            action=action, deal=w.result.deal or {}, target_deal_id=w.target_id, target_portal=self.target_portal,
            event_token=w.job.event_token, comment=notify.comment, notify_user=notify.notify_user)

    # --- notify ------------------------------------------------------------------------------

    def notify(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Send the comments / notifications / robot replies of these notify jobs."""
        results = {j.id: Outcome(job=j, outcome="notified", payload=dict(j.payload)) for j in jobs}
        by_source: dict[str, list[Job]] = defaultdict(list)
        for j in jobs:
            if j.source_id not in self.sources:
                results[j.id].status = "failed"
                results[j.id].error = PermanentError(f"source {j.source_id!r} is no longer configured")
            else:
                by_source[j.source_id].append(j)
        for source_id, group in by_source.items():
            for chunk in _pack(group, lambda j: len(notices.commands(j.payload, ""))):
                self._notify_chunk(self.sources[source_id], chunk, results)
        return [results[j.id] for j in jobs]

    def _notify_chunk(self, client: PortalClient, chunk: Sequence[Job], results: dict[int, Outcome]) -> None:
        cmds: dict[str, Command] = {}
        for j in chunk:
            cmds.update(notices.commands(j.payload, f"_{j.id}"))
        reply = None
        if cmds:
            try:
                reply = client.batch(cmds, write=True)
            except RelayError as exc:
                for j in chunk:
                    results[j.id].status, results[j.id].error = "failed", exc
                return
        for j in chunk:
            res = results[j.id]
            payload = res.payload or {}
            done = list(payload.get("done", []))
            for part in notices.PARTS:
                name = f"{part}_{j.id}"
                if reply is None or name not in cmds:
                    continue
                try:
                    reply.get(name)
                    done.append(part)
                except RelayError as exc:
                    res.status, res.error = "failed", exc
            payload["done"] = done
