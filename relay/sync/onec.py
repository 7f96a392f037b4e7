"""1C records on the ESB portal: counterparties as companies, invoices as deals or smart invoices.

A 1C call carries its record's data (stored with the job), so nothing is read from 1C.  A round:

1. **companies** — counterparties, and the counterparty each invoice names, are settled by
   :mod:`relay.sync.clients` (stamp, then the mapping's match rules: ``ЄДРПОУ``/``ИНН`` in requisites,
   title…; created when absent, in the same round); an invoice's company is only found or created,
   never rewritten from the invoice's few fields;
2. **plan** — each invoice is transformed (:mod:`relay.mapping.onec`); catalog products are found by
   ``XML_ID`` = ``КодТовара`` when the mapping asks (``crm.product.list`` by ``@XML_ID``, 50 a command);
   a linked record whose fingerprint is unchanged needs no write (posting the same document again
   writes nothing);
3. **find** — records without a settled link are looked up by their stamp (deals: ``originatorId``
   ``b24relay:1c.<base>`` + ``originId`` = the record's key; smart invoices, which have neither field:
   ``xmlId`` ``b24relay:1c.<base>:<key>``; ``crm.item.list`` with ``@``, 25 a command) — exactly once
   does not rest on the local database;
4. **write** — one target ``batch``: ``crm.item.add`` (``entityTypeId`` 2 for deals, 31 for smart
   invoices; claimed in the store first) or ``crm.item.update``, then ``crm.item.productrow.set``
   (``ownerType`` ``D`` / ``SI``, ``api-reference/crm/universal/product-rows/crm-item-productrow-set.md``)
   with the new item's id by ``$result[...]``.  Deletions follow the mapping's policy.

Links are recorded right after each write; a create whose reply was lost keeps its claim and the
record is looked up by its stamp after ``target.timeout`` + ``target.create_margin``, as for deals.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.config import OneCBase, RelayConfig
from relay.errors import NotFound, PermanentError, RelayError, TransientError
from relay.mapping.clients import COMPANY
from relay.mapping.onec import (
    ENTITY_TYPE,
    DocumentSpec,
    OneCMappingSpec,
    TargetDocument,
    camel,
    company_record,
    fingerprint,
    requisite_of,
    transform,
)
from relay.models import Job, Link
from relay.phpquery import Ref
from relay.portal.client import PortalClient
from relay.portal.protocol import MAX_BATCH, BatchReply, Command
from relay.store import Store
from relay.store.records import Settled
from relay.sync.clients import Need, Prefetched, Settler
from relay.sync.find import ORIGINATOR
from relay.sync.outcome import Outcome, pack, read_batches

log = logging.getLogger(__name__)
STAMPS = 25
PAGE = 50
OWNER_TYPE = {"deal": "D", "invoice": "SI"}  # crm.enum.ownertype SYMBOL_CODE_SHORT
#: crm.timeline.comment.add ENTITY_TYPE; ``dynamic_<entityTypeId>`` for items (``crm-timeline-comment-add.md``
#: shows it for smart processes; for smart invoices UNVERIFIED)
TIMELINE = {"deal": "deal", "invoice": "dynamic_31"}
NOUN = {"client": "counterparty", "incoming": "incoming invoice", "outgoing": "outgoing invoice"}
PRODUCTS_TTL = 600.0  # seconds a product found by XML_ID is remembered


@dataclass
class _Doc:
    job: Job
    base: OneCBase
    spec: OneCMappingSpec
    kind: str  # client | incoming | outgoing
    action: str  # upsert | delete
    data: dict[str, Any]
    result: Outcome
    company_key: str = ""
    alias: str = ""  # the record's key before its module sent a Guid (relay.intake.onec.OneCCall.alias)
    target: TargetDocument | None = None
    print: str = ""
    link: Link | None = None
    target_id: str | None = None
    step: str = ""  # find | create | update | delete
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return self.result.status == "done" and not self.result.outcome

    @property
    def doc(self) -> DocumentSpec:
        spec = self.spec.incoming if self.kind == "incoming" else self.spec.outgoing
        assert spec is not None
        return spec

    @property
    def stamp(self) -> dict[str, str]:
        """Deals: ``originatorId`` + ``originId``; smart invoices have neither (``object-fields.md``), so
        their stamp is ``xmlId`` ``b24relay:1c.<base>:<key>``."""
        return self.stamp_of(self.job.deal_id)

    def stamp_of(self, key: str) -> dict[str, str]:
        if self.doc.target == "deal":
            return {"originatorId": f"{ORIGINATOR}:{self.base.link_prefix}", "originId": key}
        return {"xmlId": f"{ORIGINATOR}:{self.base.link_prefix}:{key}"}

    @property
    def keys(self) -> list[str]:
        """The keys the record's copy may carry: its own, and the one from before its module sent a Guid."""
        return [self.job.deal_id, *([self.alias] if self.alias else [])]

    def fail(self, error: BaseException) -> None:
        self.result.status, self.result.error = "failed", error

    def end(self, status: str, outcome: str, target_id: str | None = None) -> None:
        self.result.status, self.result.outcome, self.result.target_deal_id = status, outcome, target_id


class OneCSync:
    """Relays the jobs of 1C bases (one call per round: :meth:`sync`)."""

    def __init__(self, config: RelayConfig, store: Store, target: PortalClient, settler: Settler) -> None:
        self.config, self.store, self.target, self.settler = config, store, target, settler
        self._products: dict[str, tuple[float, int | None]] = {}  # XML_ID -> (when found, target id)

    def sync(self, jobs: Sequence[Job]) -> list[Outcome]:
        docs: list[_Doc] = []
        outcomes: list[Outcome] = []
        for job in jobs:
            outcome = Outcome(job=job)
            outcomes.append(outcome)
            base = self.config.onec_base(job.source_id)
            payload = job.payload
            if base is None or not isinstance(payload.get("data"), dict) or payload.get("kind") not in NOUN:
                outcome.status = "failed"
                outcome.error = PermanentError(
                    f"1C base {job.source_id!r} is no longer configured" if base is None
                    else "the job carries no 1C data (it can only be sent again from 1C)")
                continue
            docs.append(_Doc(job, base, self.config.onec_mappings[base.id], str(payload["kind"]),
                             str(payload.get("action") or "upsert"), dict(payload["data"]), outcome,
                             alias=str(payload.get("alias") or "")))
        self._companies(docs)
        invoices = [d for d in docs if d.open and d.kind != "client"]
        self._plan(invoices)
        self._find([d for d in invoices if d.open and d.step == "find"])
        self._write([d for d in invoices if d.open and d.step in ("create", "update", "delete")])
        return outcomes

    # --- companies ---------------------------------------------------------------------------

    def _companies(self, docs: Sequence[_Doc]) -> None:
        """Settle counterparties (their own calls first: their data win) and invoices' companies."""
        needs: list[Need] = []
        ahead: dict[str, Prefetched] = defaultdict(dict)
        for d in sorted(docs, key=lambda d: d.kind != "client"):
            if d.kind == "client" and d.action == "delete":
                continue
            if d.kind == "client":
                key, record, requisite = d.job.deal_id, d.data, requisite_of(d.data)
            elif d.action == "upsert":
                key, record, requisite = company_record(d.kind, d.data)
                d.company_key = key
            else:
                continue
            need = Need(d.base.id, COMPANY, key, update=d.kind == "client")
            if (COMPANY, key, False) not in ahead[d.base.id]:
                ahead[d.base.id][(COMPANY, key, False)] = record
                ahead[d.base.id][(COMPANY, key, True)] = requisite
            needs.append(need)
        settled = self.settler.settle(needs, ahead) if needs else {}
        for d in docs:
            if d.kind == "client" and d.action == "delete":
                self._client_delete(d)
            elif d.kind == "client":
                got = settled.get((d.base.id, COMPANY, d.job.deal_id))
                if isinstance(got, RelayError):
                    d.fail(got)
                elif got:
                    d.end("done", "settled", got)
                else:
                    d.end("skipped", "nothing to write (the counterparty has no mapped data)")
            elif d.company_key:
                got = settled.get((d.base.id, COMPANY, d.company_key))
                if isinstance(got, RelayError):
                    d.fail(got)
                else:
                    d.extra["company"] = got

    def _client_delete(self, d: _Doc) -> None:
        policy = d.spec.clients.deletes if d.spec.clients is not None else "ignore"
        link = self.store.record_links(COMPANY, [(d.base.id, d.job.deal_id)]).get((d.base.id, d.job.deal_id))
        if link is None or not link.target_deal_id or link.state not in ("linked", "matched"):
            d.end("skipped", "deleted in 1C before it was relayed: nothing to do")
            return
        if policy == "ignore" or (link.state == "matched" and policy == "delete"):
            d.end("skipped", f"deleted in 1C; company #{link.target_deal_id} left as it is"
                  + (" (an ESB company linked by a match rule is never deleted)" if policy == "delete" else ""))
            return
        text = (f"[b24relay] Counterparty {d.data.get('Код') or ''} ({d.data.get('Наименование') or ''}) "
                f"was deleted in 1C (base {d.base.id}).")
        cmd = Command("crm.company.delete", {"id": link.target_deal_id}) if policy == "delete" else Command(
            "crm.timeline.comment.add", {"fields": {"ENTITY_ID": link.target_deal_id, "ENTITY_TYPE": "company",
                                                    "COMMENT": text}})
        try:
            self.target.call(cmd.method, cmd.params, write=True)
        except NotFound:
            pass  # already gone on the target
        except RelayError as exc:
            d.fail(exc)
            return
        if policy == "delete":
            self.store.drop_links(COMPANY, [(d.base.id, d.job.deal_id)])
        d.end("done", f"deleted in 1C: {policy}", link.target_deal_id)

    # --- plan --------------------------------------------------------------------------------

    def _plan(self, docs: Sequence[_Doc]) -> None:
        found = self._find_products([d for d in docs if d.action == "upsert" and d.doc.products.xml_id])
        links: dict[tuple[str, str, str], Link] = {}
        for kind in ("incoming", "outgoing"):
            keys = [(d.base.id, d.job.deal_id) for d in docs if d.kind == kind]
            links.update({(s, kind, k): lk for (s, k), lk in self.store.record_links(kind, keys).items()})
        for d in docs:
            if not d.open:
                continue
            d.link = links.get((d.base.id, d.kind, d.job.deal_id))
            settled = d.link is not None and d.link.state == "linked" and bool(d.link.target_deal_id)
            if d.action == "delete":
                if not settled or d.doc.deletes.policy == "ignore":
                    d.end("skipped", "deleted in 1C before it was relayed: nothing to do" if not settled
                          else "deleted in 1C; the record is left as it is (deletes: ignore)")
                    continue
                d.step, d.target_id = "delete", d.link.target_deal_id if d.link else None
                continue
            try:
                d.target = transform(d.data, d.spec, d.doc, d.base.names, found.get(d.base.id))
            except PermanentError as exc:
                d.fail(exc)
                continue
            company = d.extra.get("company")
            if company:
                d.target.fields["COMPANY_ID"] = company
                d.target.update_fields["COMPANY_ID"] = company
            d.print = fingerprint(d.target)
            if not settled:
                d.step = "find"
            elif d.link is not None and d.link.fingerprint == d.print:
                d.end("done", "unchanged", d.link.target_deal_id)
            else:
                d.step, d.target_id = "update", d.link.target_deal_id if d.link else None

    def _find_products(self, docs: Sequence[_Doc]) -> dict[str, dict[str, int]]:
        """Target catalog products whose ``XML_ID`` is a position's ``КодТовара`` (remembered a while)."""
        now = time.time()
        wanted = {str(p.get("КодТовара")) for d in docs for p in d.data.get("positions") or []
                  if p.get("КодТовара") and str(p.get("КодТовара")) not in d.doc.products.ids}
        ask = sorted(c for c in wanted if now - self._products.get(c, (0.0, None))[0] > PRODUCTS_TTL)
        cmds = {f"p{n}": Command("crm.product.list", {"filter": {"@XML_ID": ask[i:i + PAGE]},
                                                       "select": ["ID", "XML_ID"]})
                for n, i in enumerate(range(0, len(ask), PAGE))}
        for start in range(0, len(cmds), MAX_BATCH):
            part = dict(list(cmds.items())[start:start + MAX_BATCH])
            try:
                reply = self.target.batch(part, write=False)
            except RelayError as exc:
                for d in docs:
                    d.fail(exc)
                return {}
            for name in part:
                if name in reply.errors:
                    log.warning("products by XML_ID could not be listed: %s", reply.errors[name])
                    continue
                codes = part[name].params["filter"]["@XML_ID"]
                hits = {str(row.get("XML_ID")): int(row["ID"]) for row in reply.get(name) or []
                        if isinstance(row, dict) and str(row.get("ID", "")).isdigit()}
                for code in codes:
                    self._products[code] = (now, hits.get(code))
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for d in docs:
            for code in wanted:
                product = self._products.get(code, (0.0, None))[1]
                if product is not None:
                    out[d.base.id][code] = product
        return out

    # --- find --------------------------------------------------------------------------------

    def _find(self, docs: Sequence[_Doc]) -> None:
        """Look records without a settled link up by their stamps; create the rest (claimed first)."""
        groups: dict[tuple[str, str], list[_Doc]] = defaultdict(list)
        for d in docs:
            groups[(d.doc.target, d.base.link_prefix)].append(d)
        cmds: dict[str, tuple[Command, list[_Doc]]] = {}
        for (target, prefix), items in groups.items():
            for n in range(0, len(items), STAMPS):
                chunk = items[n:n + STAMPS]
                flt: dict[str, Any] = {"=originatorId": f"{ORIGINATOR}:{prefix}",
                                       "@originId": [k for d in chunk for k in d.keys]} if target == "deal" else {
                    "@xmlId": [d.stamp_of(k)["xmlId"] for d in chunk for k in d.keys]}
                cmds[f"s{target}{prefix}_{n}"] = (Command("crm.item.list", {
                    "entityTypeId": ENTITY_TYPE[target], "filter": flt,
                    "select": ["id", *chunk[0].stamp], "order": {"id": "ASC"}}), chunk)
        for name, reply, chunk in read_batches(self.target, cmds, _fail_all):
            result = reply.get(name)
            found = result.get("items") if isinstance(result, dict) else None
            for d in chunk:
                for key in d.keys:  # its own stamp first; a copy under the old key is taken over
                    stamp = d.stamp_of(key)
                    hits = sorted(int(i["id"]) for i in found or [] if isinstance(i, dict)
                                  and all(str(i.get(k)) == v for k, v in stamp.items()))
                    if hits:
                        d.step, d.target_id = "update", str(hits[0])
                        d.extra["restamp"] = key != d.job.deal_id
                        break
        now = time.time()
        window = self.config.target.settle_seconds
        creating = [d for d in docs if d.open and d.step == "find"]
        for d in creating:
            lk = d.link
            if lk is not None and lk.state == "creating" and now < lk.updated_at + window:
                error = TransientError(f"an earlier create of this {NOUN[d.kind]} may still land on the target; "
                                       f"looking again in {lk.updated_at + window - now:.0f}s")
                error.retry_after = lk.updated_at + window - now
                d.fail(error)
        for kind in ("incoming", "outgoing"):
            mine = [d for d in creating if d.open and d.kind == kind]
            claimed = self.store.claim_creates(kind, [(d.base.id, d.job.deal_id) for d in mine], window)
            for d in mine:
                if (d.base.id, d.job.deal_id) in claimed:
                    d.step = "create"
                else:
                    error = TransientError(f"another worker is creating this {NOUN[d.kind]}; looking again in 3s")
                    error.retry_after = 3.0
                    d.fail(error)

    # --- write -------------------------------------------------------------------------------

    def _commands(self, d: _Doc, i: int) -> dict[str, Command]:
        target = d.doc.target
        type_id = ENTITY_TYPE[target]
        if d.step == "delete":
            policy = d.doc.deletes
            if policy.policy == "delete":
                return {f"x{i}": Command("crm.item.delete", {"entityTypeId": type_id, "id": d.target_id})}
            if policy.policy == "stage":
                return {f"x{i}": Command("crm.item.update", {"entityTypeId": type_id, "id": d.target_id,
                                                             "fields": {"stageId": policy.stage}})}
            text = (f"[b24relay] {NOUN[d.kind].capitalize()} {d.data.get('НомерДокумента') or d.job.deal_id} "
                    f"was deleted in 1C (base {d.base.id}).")
            return {f"x{i}": Command("crm.timeline.comment.add", {"fields": {
                "ENTITY_ID": d.target_id, "ENTITY_TYPE": TIMELINE[target], "COMMENT": text}})}
        assert d.target is not None
        cmds: dict[str, Command] = {}
        if d.step == "create":
            fields = {camel(k): v for k, v in d.target.fields.items()} | d.stamp
            cmds[f"a{i}"] = Command("crm.item.add", {"entityTypeId": type_id, "fields": fields,
                                                     "useOriginalUfNames": "Y"})
            owner: Any = Ref(f"a{i}", ("item", "id"))
        else:
            fields = {camel(k): v for k, v in d.target.update_fields.items()}
            if d.extra.get("restamp"):  # found under the key from before the Guid: it carries the new one now
                fields |= d.stamp
            cmds[f"u{i}"] = Command("crm.item.update", {"entityTypeId": type_id, "id": d.target_id, "fields": fields,
                                                        "useOriginalUfNames": "Y"})
            owner = d.target_id
        cmds[f"r{i}"] = Command("crm.item.productrow.set", {"ownerType": OWNER_TYPE[target], "ownerId": owner,
                                                            "productRows": d.target.rows})
        return cmds

    def _write(self, docs: Sequence[_Doc]) -> None:
        for chunk in pack(docs, lambda d: len(self._commands(d, 0))):
            cmds: dict[str, Command] = {}
            for i, d in enumerate(chunk):
                cmds.update(self._commands(d, i))
            try:
                reply = self.target.batch(cmds, write=True)
            except RelayError as exc:
                for d in chunk:
                    d.fail(exc)  # creates keep their claim: the reply may be lost, not the create
                continue
            settled: dict[str, dict[tuple[str, str], Settled]] = defaultdict(dict)
            for i, d in enumerate(chunk):
                self._take(d, reply, i, settled)
            for kind, facts in settled.items():
                self.store.settle_records(kind, facts)

    def _take(self, d: _Doc, reply: BatchReply, i: int, settled: dict[str, dict[tuple[str, str], Settled]]) -> None:
        key = (d.base.id, d.job.deal_id)
        if d.step == "delete":
            try:
                reply.get(f"x{i}")
            except NotFound:
                pass
            except RelayError as exc:
                d.fail(exc)
                return
            if d.doc.deletes.policy == "delete":
                self.store.drop_links(d.kind, [key])
            d.end("done", f"deleted in 1C: {d.doc.deletes.policy}", d.target_id)
            return
        try:
            if d.step == "create":
                answer = reply.get(f"a{i}")
                item = answer.get("item") if isinstance(answer, dict) else None
                d.target_id = str(item.get("id")) if isinstance(item, dict) else None
                if not d.target_id:
                    raise PermanentError("crm.item.add answered without an item id")
            else:
                reply.get(f"u{i}")
        except NotFound:
            self.store.lose_records(d.kind, [key])
            error = TransientError(f"target record #{d.target_id} no longer exists; looking for it by its stamp")
            error.retry_after = 0.0
            d.fail(error)
            return
        except RelayError as exc:
            if d.step == "create":
                self.store.drop_claims(d.kind, [key])
            d.fail(exc)
            return
        assert d.target_id is not None
        try:
            reply.get(f"r{i}")
        except RelayError as exc:  # the record exists; its rows are written again with the next attempt
            settled[d.kind][key] = Settled(d.target_id, "linked", None)
            d.fail(exc)
            return
        settled[d.kind][key] = Settled(d.target_id, "linked", d.print)
        d.end("done", "created" if d.step == "create" else "updated", d.target_id)


def _fail_all(docs: list[_Doc], error: RelayError) -> None:
    for d in docs:
        d.fail(error)
