"""Jobs' work: read the source deals, transform, upsert on the target exactly once; then notify.

Several ready jobs are handled together, so each step costs one request for many deals:

1. **read** — one source ``batch`` per source portal: ``crm.deal.get`` + ``crm.deal.productrows.get``
   per deal (25 deals per batch: a batch holds 50 commands — ``batch.md``);
2. **plan** — trigger stage check, mapping transform, link lookup in the store; a linked deal whose
   fingerprint is unchanged needs no write at all;
3. **find** — every deal without a settled link (none in this database, or ``creating``) is looked
   up on the target by its stamp (:mod:`relay.sync.find`, 25 stamps per ``crm.deal.list``): exactly
   once does not rest on the local database.  After a create whose reply was lost, "not there" is
   concluded only once that create can no longer land (``target.timeout`` + ``target.create_margin``);
4. **write** — one target ``batch``: ``crm.deal.add`` then ``crm.deal.productrows.set`` with
   ``id=$result[...]`` for new deals, ``crm.deal.update`` + ``productrows.set`` for linked ones
   (plus ``crm.deal.delete`` of extra copies found, when ``target.duplicates`` is ``delete``);
5. **check** — a fresh create is looked up again once any slower create could have landed
   (:meth:`Pipeline.check_copies`): the oldest copy is kept, the others deleted or reported.

A failing command (``result_error``) only fails its own deal.  Notifications run as separate
``notify`` jobs (:meth:`Pipeline.notify`), so a failing comment never repeats a target write; every
application-robot call gets its answer, whether the deal was relayed, unchanged or skipped.
The pipeline only *reads* the store, except for the ``creating`` mark written before a create is
sent; link changes travel on each :class:`Outcome` and the worker records a whole round in one
transaction (a crash before that leaves ``creating`` marks, which the next attempt resolves).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from relay.config import RelayConfig, SourceConfig
from relay.errors import (
    NetworkError,
    NotFound,
    OperationTimeLimit,
    PermanentError,
    QueryLimitExceeded,
    RelayError,
    ReplyLost,
    TargetMisconfigured,
    TransientError,
)
from relay.mapping.deal import (
    CLEAR,
    CLEAR_MULTIPLE,
    MappingSpec,
    TargetDeal,
    fingerprint,
    in_trigger,
    relayed_mark,
    transform,
)
from relay.mapping.files import file_ids, files_print
from relay.models import Job, Link
from relay.phpquery import Ref
from relay.portal.client import PortalClient
from relay.portal.protocol import BatchReply, Command
from relay.store import Store
from relay.sync import clients, copies, files, notices
from relay.sync import find as lookup
from relay.sync.deliver import Deliverer
from relay.sync.find import ORIGIN_LINK
from relay.sync.onec import OneCSync
from relay.sync.outcome import Outcome, pack
from relay.sync.read import Read
from relay.sync.read import read as read_deals

log = logging.getLogger(__name__)
T = TypeVar("T")
#: errors proving a request never ran: refused by the limits, or the connection never opened
NOT_EXECUTED = (QueryLimitExceeded, OperationTimeLimit, NetworkError)


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
    link: Link | None = None  # the store's link before this round
    extras: list[str] = field(default_factory=list)  # extra target copies found (newer than target_id)
    adopted: str = ""  # "created" (our earlier create landed) | "updated" (found, not linked here)
    gone: bool = False  # the source deal was deleted (and the mapping has a delete policy)
    file_ids: dict[str, list[str]] = field(default_factory=dict)  # target file field -> source file ids
    files_print: str = ""

    @property
    def open(self) -> bool:
        return self.result.status == "done" and not self.result.outcome

    def fail(self, error: BaseException) -> None:
        self.result.status, self.result.error = "failed", error


def _modified(deal: Mapping[str, Any]) -> str | None:
    value = deal.get("DATE_MODIFY")
    return str(value) if value else None


def _on_source_delete(w: _Work) -> Command:
    """The command that applies the mapping's ``deletes.source`` policy to the target deal."""
    policy = w.spec.deletes
    if policy.source == "comment":
        return Command("crm.timeline.comment.add", {"fields": {
            "ENTITY_ID": w.target_id, "ENTITY_TYPE": "deal",
            "COMMENT": f"[b24relay] Deal #{w.job.deal_id} was deleted on the partner portal ({w.source.id})."}})
    if policy.source == "stage":
        return Command("crm.deal.update", {"id": w.target_id, "fields": {"STAGE_ID": policy.stage}})
    return Command("crm.deal.delete", {"id": w.target_id})


def _funnel_move(fields: dict[str, Any]) -> dict[str, Any]:
    """Take ``CATEGORY_ID`` (and the ``STAGE_ID`` that goes with it) out of update fields, as the
    ``crm.item.update`` fields that move a deal to that funnel — ``api-reference/crm/deals/crm-deal-update.md``
    (the funnel cannot change there), ``api-reference/crm/universal/crm-item-update.md``."""
    if "CATEGORY_ID" not in fields:
        return {}
    move = {"categoryId": fields.pop("CATEGORY_ID")}
    if "STAGE_ID" in fields:
        move["stageId"] = fields.pop("STAGE_ID")
    return move


class Pipeline:
    """Runs sync and notify jobs against the configured portals."""

    def __init__(self, config: RelayConfig, store: Store, target: PortalClient,
                 sources: Mapping[str, PortalClient]) -> None:
        self.config, self.store, self.target, self.sources = config, store, target, sources
        self.target_portal = config.target.host or "target"
        self._target_ok = False
        self.deliverer = Deliverer(target, sources)
        self.settler = clients.Settler(config, store, target, sources)
        self.onec = OneCSync(config, store, target, self.settler)

    # --- sync --------------------------------------------------------------------------------

    def sync(self, jobs: Sequence[Job], renew: Callable[[Sequence[Job]], set[int]] | None = None) -> list[Outcome]:
        """Relay the deals of these sync jobs; one outcome per job, in order.

        ``renew`` extends the jobs' leases just before anything is written to the target and says
        which are still ours: a job whose lease was lost (another worker took it over) writes nothing.
        """
        records = [j for j in jobs if self.config.onec_base(j.source_id) is not None]
        if records:  # 1C bases' calls carry their records (relay.sync.onec)
            done = {o.job.id: o for o in self.onec.sync(records)}
            rest = self.sync([j for j in jobs if j.id not in done], renew) if len(records) < len(jobs) else []
            rest_by_id = {o.job.id: o for o in rest}
            return [done.get(j.id) or rest_by_id[j.id] for j in jobs]
        works: list[_Work] = []
        for job in jobs:
            source = self.config.source(job.source_id)
            outcome = Outcome(job=job)
            if source is None:
                outcome.status = "failed"
                outcome.error = PermanentError(f"source {job.source_id!r} is no longer configured")
                works.append(_Work(job, None, None, outcome))  # type: ignore[arg-type]
                continue
            works.append(_Work(job, source, self.config.mappings[source.id], outcome))
        ahead = self._read([w for w in works if w.open])
        self._plan([w for w in works if w.open], ahead)
        if any(w.open and w.action for w in works):
            try:
                self.check_target()
            except RelayError as exc:
                for w in works:
                    if w.open and w.action:
                        w.fail(exc)
        if renew is not None:
            pending = [w for w in works if w.open and w.action]
            mine = renew([w.job for w in pending])
            for w in pending:
                if w.job.id not in mine:
                    w.fail(TransientError("lease lost: another worker took this job over"))
        self._find([w for w in works if w.open and w.action == "find"])
        self._write([w for w in works if w.open and w.action in ("create", "update", "gone")])
        return [w.result for w in works]

    def _read(self, works: Sequence[_Work]) -> dict[str, clients.Prefetched]:
        """Read the round's deals and rows, many per command (:mod:`relay.sync.read`), and the clients
        of the source's last round in the room left (returned by source)."""
        ahead: dict[str, clients.Prefetched] = {}
        by_source: dict[str, list[_Work]] = defaultdict(list)
        for w in works:
            by_source[w.source.id].append(w)
        for source_id, group in by_source.items():
            prefetched: dict[str, Any] = {}  # the clients of recent rounds, read in the room left
            answers = read_deals(self.sources[source_id], [w.job.deal_id for w in group], group[0].spec,
                                 self.settler.prefetch(source_id), prefetched)
            ahead[source_id] = self.settler.take_prefetch(source_id, prefetched)
            for w in group:
                self._take_read(w, answers.get(w.job.deal_id))
        return ahead

    def _take_read(self, w: _Work, answer: Read | RelayError | None) -> None:
        if isinstance(answer, RelayError):
            w.fail(answer)
        elif answer is None and w.spec.deletes.source != "ignore":
            w.gone = True  # deleted on the source: the delete policy acts on its target deal (plan)
        elif answer is None:
            w.result.status, w.result.outcome = "skipped", "source deal not found (deleted?)"
            w.result.notify = notices.robot_notice(deal_id=w.job.deal_id, event_tokens=w.job.event_tokens,
                                                   status="skipped", reason="the deal was not found",
                                                   texts=w.source.texts)
        else:
            w.result.deal, w.rows = answer.deal, answer.rows
            robot = w.job.payload.get("robot")
            if isinstance(robot, dict):  # an application robot's settings: source fields ROBOT_<CODE>
                w.result.deal = {**answer.deal, **{f"ROBOT_{str(k).upper()}": v for k, v in robot.items()}}

    def _plan(self, works: Sequence[_Work], ahead: Mapping[str, clients.Prefetched]) -> None:
        known = self.store.links([(w.source.id, w.job.deal_id) for w in works])
        for w in works:
            if w.gone:
                self._plan_gone(w, known.get((w.source.id, w.job.deal_id)))
                continue
            deal = w.result.deal or {}
            mark = relayed_mark(deal, w.spec)
            if mark is not None:  # a copy some relay made here: never relayed back to its origin
                w.result.status, w.result.outcome = "skipped", f"created by a relay ({mark}); not relayed back"
                w.result.notify = notices.robot_notice(deal_id=w.job.deal_id, event_tokens=w.job.event_tokens,
                                                       status="skipped", reason=w.result.outcome, texts=w.source.texts)
                continue
            if not in_trigger(deal, w.spec):
                w.result.status = "skipped"
                w.result.outcome = f"stage {deal.get('STAGE_ID')!s} is not a trigger stage"
                w.result.notify = notices.robot_notice(deal_id=w.job.deal_id, event_tokens=w.job.event_tokens,
                                                       status="skipped", reason=w.result.outcome, texts=w.source.texts)
                continue
            try:
                w.target = transform(deal, w.rows, w.spec, w.source.names)
            except PermanentError as exc:
                w.fail(exc)
                continue
        self._clients([w for w in works if w.open and w.target is not None and not w.gone], ahead)
        for w in works:
            if w.open and w.target is not None and not w.gone:
                self._decide(w, known.get((w.source.id, w.job.deal_id)))

    def _clients(self, works: Sequence[_Work], ahead: Mapping[str, clients.Prefetched]) -> None:
        """Settle the deals' companies and contacts on the target (:mod:`relay.sync.clients`) and point
        the target deals at them (``COMPANY_ID``, ``CONTACT_IDS``)."""
        needs = {w.job.id: clients.needs_of(w.result.deal or {}, w.spec, w.source.id) for w in works}
        if not any(needs.values()):
            return
        settled = self.settler.settle((n for ns in needs.values() for n in ns), ahead)
        for w in works:
            assert w.target is not None
            ids: dict[str, list[str]] = {"company": [], "contact": []}
            for need in needs[w.job.id]:
                got = settled.get(need.key)
                if isinstance(got, RelayError):
                    w.fail(got)
                    break
                if got:
                    ids[need.entity].append(got)
            if not w.open:
                continue
            if w.spec.company is not None:
                company = ids["company"][0] if ids["company"] else None
                if company:
                    w.target.fields["COMPANY_ID"] = company
                w.target.update_fields["COMPANY_ID"] = company or CLEAR
            if w.spec.contacts is not None:
                contacts = list(dict.fromkeys(ids["contact"]))
                if contacts:
                    w.target.fields["CONTACT_IDS"] = contacts
                w.target.update_fields["CONTACT_IDS"] = contacts or list(CLEAR_MULTIPLE)

    def _decide(self, w: _Work, link: Link | None) -> None:
        """Create, update or nothing: the deal's fingerprint against what its link says was written."""
        assert w.target is not None
        deal = w.result.deal or {}
        w.print, w.link = fingerprint(w.target), link
        if w.spec.files.fields:  # a changed file changes the print: the deal is updated, its files sent
            try:
                w.file_ids = file_ids(deal, w.spec.files)
            except PermanentError as exc:
                w.fail(exc)
                return
            w.files_print = files_print(w.file_ids)
            w.print = hashlib.sha256(f"{w.print}:{w.files_print}".encode()).hexdigest()
        if link is None or link.state != "linked" or not link.target_deal_id:
            w.action = "find"  # the local database is not the only truth: the target may have it
        elif link.fingerprint == w.print:
            w.result.outcome, w.result.target_deal_id = "unchanged", link.target_deal_id
            w.result.link = (link.target_deal_id, w.print, _modified(deal), None)
            w.result.notify = notices.robot_notice(
                deal_id=w.job.deal_id, event_tokens=w.job.event_tokens, status="unchanged",
                target_deal_id=link.target_deal_id, target_portal=self.target_portal, texts=w.source.texts)
        else:
            w.action, w.target_id = "update", link.target_deal_id

    @staticmethod
    def _plan_gone(w: _Work, link: Link | None) -> None:
        if link is None or link.state != "linked" or not link.target_deal_id:
            w.result.status, w.result.outcome = "skipped", "source deal deleted; it has no target deal"
            w.result.notify = notices.robot_notice(deal_id=w.job.deal_id, event_tokens=w.job.event_tokens,
                                                   status="skipped", reason="the deal was deleted",
                                                   texts=w.source.texts)
        else:
            w.action, w.target_id = "gone", link.target_deal_id

    # --- target checks -----------------------------------------------------------------------

    def check_target(self) -> None:
        """Make sure every mapping's link field exists on the target (once per process).

        Without it the stamp is silently dropped by ``crm.deal.add`` and nothing could find a deal
        again, so exactly once would rest on the local database alone.  Raises
        :class:`~relay.errors.TargetMisconfigured` (or the error that prevented the check)."""
        if self._target_ok:
            return
        fields = self.target.call("crm.deal.fields")
        names = set(fields) if isinstance(fields, Mapping) else set()
        missing = sorted({f"{spec.link_field} (link_field of source {sid})"
                          for sid, spec in self.config.mappings.items()
                          if spec.link_field != ORIGIN_LINK and spec.link_field not in names})
        if missing:
            raise TargetMisconfigured(
                "the target portal has no deal field " + ", ".join(missing) + ": create it "
                "(CRM > Settings > Custom fields, or crm.deal.userfield.add, type string) or use "
                "link_field: ORIGIN_ID")
        self._target_ok = True

    def _find(self, works: Sequence[_Work]) -> None:
        """Look the deals up on the target by their stamps (many per command) before creating them."""
        found = lookup.find(self.target, [self._wanted(w) for w in works])
        now = time.time()
        for w in works:
            hits = found.get((w.source.id, w.job.deal_id), [])
            if isinstance(hits, RelayError):
                w.fail(hits)
                continue
            creating = w.link is not None and w.link.state == "creating"
            if hits:
                w.action, w.target_id, w.extras = "update", hits[0], hits[1:]
                w.adopted = "created" if creating else "updated"
                log.info("found target deal %s for %s/%s%s", w.target_id, w.source.id, w.job.deal_id,
                         f" and {len(w.extras)} extra copies" if w.extras else "")
                continue
            if w.link is not None and w.link.state == "lost" and w.spec.deletes.target == "recreate":
                log.warning("target deal #%s of %s/%s was deleted on the target; creating it again (deletes.target:"
                            " recreate)", w.link.target_deal_id, w.source.id, w.job.deal_id)
                w.action = "create"
                continue
            if w.link is not None and w.link.state == "lost":
                w.fail(NotFound("", f"target deal #{w.link.target_deal_id} no longer exists on the target portal "
                                    f"and no other copy carries the stamp (run `relay unlink {w.source.id} "
                                    f"{w.job.deal_id}` to create it again)", method="crm.deal.update"))
                continue
            settle = self.config.target.settle_seconds
            if creating and w.link is not None and now < w.link.updated_at + settle:
                wait = w.link.updated_at + settle - now
                error = TransientError(f"an earlier create of this deal may still land on the target "
                                       f"(sent {now - w.link.updated_at:.0f}s ago); looking again in {wait:.0f}s")
                error.retry_after = wait
                w.fail(error)
                continue
            w.action = "create"

    def _wanted(self, w: _Work) -> lookup.Wanted:
        return lookup.Wanted((w.source.id, w.job.deal_id), w.spec.link_field, w.source.link_prefix)

    # --- write -------------------------------------------------------------------------------

    def _commands(self, w: _Work, i: int) -> dict[str, Command]:
        if w.action == "gone":
            return {f"g{i}": _on_source_delete(w)}
        assert w.target is not None
        cmds: dict[str, Command] = {}
        stamp = self._wanted(w).stamp
        if w.action == "create":
            fields = {**w.target.fields, **stamp}
            cmds[f"a{i}"] = Command("crm.deal.add", {"fields": fields, "params": {"REGISTER_SONET_EVENT": "Y"}})
            deal_ref: Any = Ref(f"a{i}")
        else:
            fields = {**w.target.update_fields, **stamp}
            move = _funnel_move(fields)
            if move:  # crm.deal.update ignores CATEGORY_ID; crm.item.update moves the deal
                cmds[f"m{i}"] = Command("crm.item.update", {"entityTypeId": 2, "id": w.target_id, "fields": move})
            cmds[f"u{i}"] = Command("crm.deal.update", {"id": w.target_id, "fields": fields})
            deal_ref = w.target_id
        if w.target.rows is not None:
            cmds[f"p{i}"] = Command("crm.deal.productrows.set", {"id": deal_ref, "rows": w.target.rows})
        if self.config.target.duplicates == "delete":
            for n, extra in enumerate(w.extras):
                cmds[f"x{i}_{n}"] = Command("crm.deal.delete", {"id": extra})
        return cmds

    def _write(self, works: Sequence[_Work]) -> None:
        creates = [(w.source.id, w.job.deal_id) for w in works if w.action == "create"]
        if creates:
            self.store.mark_creating(creates)
        for chunk in pack(works, lambda w: len(self._commands(w, 0))):
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
        if w.action == "gone":
            policy = w.spec.deletes.source
            try:
                reply.get(f"g{i}")
            except NotFound:
                pass  # the target deal is gone already
            except RelayError as exc:
                w.fail(exc)
                return
            w.result.outcome, w.result.target_deal_id = f"source deleted: {policy}", w.target_id
            w.result.unlink = policy == "delete"
            return
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
                if f"m{i}" in reply.results or f"m{i}" in reply.errors:
                    reply.get(f"m{i}")
            except NotFound:  # deleted, or an extra copy removed by another relay: find the copy kept
                lost = TransientError(f"target deal #{w.target_id} no longer exists; looking for another "
                                      "copy by the deal's stamp")
                lost.retry_after = 0.0
                w.result.link_lost = True
                w.fail(lost)
                return
            except RelayError as exc:
                w.fail(exc)
                return
        assert w.target_id is not None
        self._report_extras(w, reply, i)
        # a fresh create is checked again for extra copies once any slower create could have landed
        verify = self.config.target.settle_seconds if w.action == "create" else None
        try:
            if w.target.rows is not None:
                reply.get(f"p{i}")
        except RelayError as exc:
            w.result.link = (w.target_id, None, None, verify)  # the deal exists; its rows must be written again
            w.result.target_deal_id = w.target_id
            w.fail(exc)
            return
        try:
            skipped = self._files(w)
        except RelayError as exc:  # the deal is written; its files are sent again with the next attempt
            w.result.link = (w.target_id, None, None, verify)
            w.result.target_deal_id = w.target_id
            w.fail(exc)
            return
        w.result.link = (w.target_id, w.print, _modified(w.result.deal or {}), verify)
        action = "created" if w.action == "create" else (w.adopted or "updated")
        w.result.outcome, w.result.target_deal_id = action, w.target_id
        notify = self.config.file.notify
        w.result.notify = notices.success_notice(
            action=action, deal=w.result.deal or {}, target_deal_id=w.target_id, target_portal=self.target_portal,
            event_tokens=w.job.event_tokens, comment=notify.comment, notify_user=notify.notify_user,
            ref=uuid.uuid4().hex[:12], note=notices.skipped_files(skipped, w.source.texts), texts=w.source.texts)

    def _files(self, w: _Work) -> list[files.Skipped]:
        """Send the deal's files when they changed since last sent (:mod:`relay.sync.files`): downloaded
        from the source, uploaded to the target deal outside any batch.  Returns the files skipped."""
        if not w.spec.files.fields or w.target_id is None:
            return []
        sent = (w.link.files if w.link is not None and w.action != "create" else None) or ""
        if sent == w.files_print:
            return []
        _, skipped = files.transfer(self.sources[w.source.id], self.target, w.job.deal_id, w.target_id,
                                    w.spec.files, w.file_ids)
        w.result.files = w.files_print
        return skipped

    def _report_extras(self, w: _Work, reply: BatchReply, i: int) -> None:
        for n, extra in enumerate(w.extras):
            deleted = self.config.target.duplicates == "delete" and copies.deleted(reply, f"x{i}_{n}", extra)
            copies.report(w.source.id, w.job.deal_id, extra, "deleted" if deleted else "left in place", w.target_id)

    # --- checks after creates ----------------------------------------------------------------

    def check_copies(self, links: Sequence[Link]) -> dict[tuple[str, str], str | None]:
        """Look for extra target copies of freshly created deals (:func:`relay.sync.copies.check`)."""
        return copies.check(self.config, self.target, links)

    # --- notify ------------------------------------------------------------------------------

    def notify(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Send the comments / notifications / robot answers / integrator alerts of these notify jobs."""
        return self.deliverer.deliver(jobs)
