"""Settle a round's companies and contacts on the target before the deals that point at them.

For the distinct source companies and contacts of a round's deals (:class:`Need`):

1. **read** — one source ``batch``: ``crm.company.list`` / ``crm.contact.list`` filtered by ``@ID``
   (50 a command; multi-fields named in ``select``, ``*`` leaves them out —
   ``api-reference/crm/companies/crm-company-list.md``), and when the mapping matches or copies
   requisites, ``crm.requisite.list`` by ``=ENTITY_TYPE_ID`` + ``@ENTITY_ID``;
2. **plan** — transform by the mapping section, compare with the stored link: a linked record whose
   fingerprint is unchanged needs nothing; a ``matched`` record (``on_match: link``) is never written;
3. **find** — one target ``batch`` for the records without a settled link: the stamp
   (``ORIGINATOR_ID`` ``b24relay:<prefix>`` + ``ORIGIN_ID``, 25 a command) and every match rule of the
   mapping at once (``crm.requisite.list`` by ``@RQ_…``; ``crm.duplicate.findbycomm`` up to 20 values,
   ``api-reference/crm/duplicates/crm-duplicate-find-by-comm.md``; ``crm.company.list`` by ``@TITLE``),
   plus the current multi-fields of the records about to be updated.  Hits are re-checked against the
   values (an ignored filter must not "find" a record); a findbycomm hit for several records at once
   is resolved by reading the hit records' values.  The rules are applied in the mapping's order;
   the oldest hit wins;
4. **write** — one target ``batch``: creates (claimed in the store first, so two workers never create
   the same client) with the stamp, multi-fields and a copied requisite (``$result[...]``), and
   updates that change multi-fields in place (:mod:`relay.mapping.multifields`).

The links are recorded as soon as the write is answered.  A create whose reply was lost keeps its
claim (``creating``): the deals wait, and after ``target.timeout`` + ``target.create_margin`` the
stamp look-up finds the record or it is created again — the same rule as for deals.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.config import RelayConfig
from relay.errors import NotFound, PermanentError, RelayError, TransientError
from relay.mapping import clients as mapping
from relay.mapping.clients import (
    COMPANY,
    CONTACT,
    ENTITY_TYPE_IDS,
    Sections,
    TargetRecord,
    match_values,
    section,
)
from relay.mapping.deal import MappingSpec
from relay.mapping.multifields import MULTI_FIELDS, normalize
from relay.models import Link
from relay.phpquery import Ref
from relay.portal.client import PortalClient
from relay.portal.protocol import BatchReply, Command
from relay.store import Store
from relay.store.records import Settled
from relay.sync.find import ORIGINATOR
from relay.sync.outcome import pack, read_batches

log = logging.getLogger(__name__)
PAGE = 50
STAMPS = 25  # stamps per list command: room for a few extra copies within one page
COMM = 20  # crm.duplicate.findbycomm looks at 20 values at most
REQUISITE_OWNERS = 25  # requisites per owner are usually one or two: 25 owners fit a page
PREFETCH = 500  # clients per entity type remembered from a round for the next one
METHOD = {COMPANY: "crm.company", CONTACT: "crm.contact"}
DUP_TYPE = {COMPANY: "COMPANY", CONTACT: "CONTACT"}
NOUN = {COMPANY: "company", CONTACT: "contact"}
TAG = {COMPANY: "cm", CONTACT: "ct"}  # in batch command names

Key = tuple[str, str, str]  # (source id, entity, source record id)
#: clients read ahead (:meth:`Settler.prefetch`): (entity, id, is the requisite) -> row (None: no such record)
Prefetched = dict[tuple[str, str, bool], dict[str, Any] | None]


@dataclass(frozen=True)
class Need:
    """A source company or contact some deal of the round points at."""

    source_id: str
    entity: str  # company | contact
    record_id: str
    update: bool = field(default=True, compare=False)  # False: only find or create it (a 1C invoice's company)

    @property
    def key(self) -> Key:
        """(source id, entity, record id)."""
        return (self.source_id, self.entity, self.record_id)


@dataclass
class _Rec:
    need: Need
    spec: Sections
    prefix: str  # the source's link prefix
    ctx: dict[str, str]
    record: dict[str, Any] | None = None
    requisite: dict[str, Any] | None = None
    target: TargetRecord | None = None
    print: str = ""
    link: Link | None = None
    target_id: str | None = None
    action: str = ""  # find | update | create
    state: str = "linked"
    hits: dict[str, list[str]] = field(default_factory=dict)  # rule -> target ids (oldest first)
    current: dict[str, Any] | None = None  # the target record's multi-fields (before an update)
    result: str | RelayError | None = None  # target id, or why not

    @property
    def open(self) -> bool:
        return self.result is None

    @property
    def stamp(self) -> dict[str, str]:
        return {"ORIGINATOR_ID": f"{ORIGINATOR}:{self.prefix}", "ORIGIN_ID": self.need.record_id}


def needs_of(deal: Mapping[str, Any], spec: MappingSpec, source_id: str) -> list[Need]:
    """The clients a source deal points at that its mapping relays (company first, then contacts)."""
    out: list[Need] = []
    company = str(deal.get("COMPANY_ID") or "")
    if spec.company is not None and company not in ("", "0"):
        out.append(Need(source_id, COMPANY, company))
    if spec.contacts is not None:
        ids = deal.get("CONTACT_IDS")
        if not isinstance(ids, list):
            ids = [deal.get("CONTACT_ID")]
        out += [Need(source_id, CONTACT, str(i)) for i in dict.fromkeys(ids) if str(i or "") not in ("", "0")]
    return out


class Settler:
    """Settles companies and contacts (one call per round: :meth:`settle`)."""

    def __init__(self, config: RelayConfig, store: Store, target: PortalClient,
                 sources: Mapping[str, PortalClient]) -> None:
        self.config, self.store, self.target, self.sources = config, store, target, sources
        self._recent: dict[str, dict[str, list[str]]] = {}  # source -> entity -> the last round's client ids

    def settle(self, needs: Iterable[Need], prefetched: Mapping[str, Prefetched] | None = None,
               ) -> dict[Key, str | RelayError | None]:
        """Each client's target id, or the error that kept it from being settled (None: the source
        record no longer exists, the deal goes without it)."""
        recs: dict[Key, _Rec] = {}
        for need in needs:
            if need.key in recs:
                continue
            origin = self._origin(need.source_id)
            if origin is not None:
                recs[need.key] = _Rec(need, *origin)
        if not recs:
            return {}
        self._read(list(recs.values()), prefetched or {})
        self._plan([r for r in recs.values() if r.open])
        self._find([r for r in recs.values() if r.open and r.action in ("find", "update")])
        self._decide([r for r in recs.values() if r.open and r.action == "find"])
        self._write([r for r in recs.values() if r.open and r.action in ("create", "update")])
        return {k: r.result for k, r in recs.items()}

    # --- read --------------------------------------------------------------------------------

    def _origin(self, origin_id: str) -> tuple[Sections, str, dict[str, str]] | None:
        """A partner portal's or a 1C base's mapping, link prefix and template context."""
        source = self.config.source(origin_id)
        if source is not None:
            return self.config.mappings[source.id], source.link_prefix, source.names
        base = self.config.onec_base(origin_id)
        if base is not None:
            return self.config.onec_mappings[base.id], base.link_prefix, base.names
        return None

    def prefetch(self, source_id: str) -> dict[str, Command]:
        """Reads of the clients of this source's last round, to ride along with the next deal read in
        the room its batch has left (:func:`relay.sync.read.read`): partners' deals share clients, so
        the next round usually needs no read of its own.  Cheapest first: the most recent clients."""
        recent = self._recent.get(source_id)
        spec = self.config.mappings.get(source_id)
        if not recent or spec is None:
            return {}
        return {name: cmd for name, (cmd, _, _, _) in _source_reads(spec, recent).items()}

    def take_prefetch(self, source_id: str, results: Mapping[str, Any]) -> Prefetched:
        """What :meth:`prefetch`'s commands answered, for this round's :meth:`settle`."""
        spec = self.config.mappings.get(source_id)
        recent = self._recent.get(source_id)
        got: Prefetched = {}
        if spec is None or not recent:
            return got
        for name, (_, entity, requisite, ids) in _source_reads(spec, recent).items():
            if name in results:
                rows = _by_owner(results[name], requisite)
                got.update({(entity, i, requisite): rows.get(i) for i in ids})
        return got

    def _read(self, recs: Sequence[_Rec], prefetched: Mapping[str, Prefetched]) -> None:
        by_source: dict[str, list[_Rec]] = defaultdict(list)
        for r in recs:
            by_source[r.need.source_id].append(r)
        for source_id, group in by_source.items():
            got = prefetched.get(source_id, {})
            spec = group[0].spec
            missing: dict[str, list[str]] = defaultdict(list)
            for r in group:
                sect = section(spec, r.need.entity)
                wants = sect is not None and _wants_requisites(sect)
                key = (r.need.entity, r.need.record_id)
                if (*key, False) in got and (not wants or (*key, True) in got):
                    r.record, r.requisite = got[(*key, False)], got.get((*key, True))
                else:
                    missing[r.need.entity].append(r.need.record_id)
            self._recent[source_id] = {e: [r.need.record_id for r in group if r.need.entity == e][:PREFETCH]
                                       for e in (COMPANY, CONTACT)}
            if not missing or source_id not in self.sources:  # a 1C base's records come with its calls
                continue
            reads = _source_reads(spec, missing)
            mine = {(r.need.entity, r.need.record_id): r for r in group}
            cmds = {name: (cmd, [mine[(entity, i)] for i in ids]) for name, (cmd, entity, _, ids) in reads.items()}
            for name, reply, chunk in read_batches(self.sources[source_id], cmds, chunk_fail):
                rows = _by_owner(reply.get(name), reads[name][2])
                for r in chunk:
                    if reads[name][2]:
                        r.requisite = rows.get(r.need.record_id)
                    else:
                        r.record = rows.get(r.need.record_id)

    # --- plan --------------------------------------------------------------------------------

    def _plan(self, recs: Sequence[_Rec]) -> None:
        links: dict[tuple[str, str, str], Link] = {}
        for entity in (COMPANY, CONTACT):
            keys = [(r.need.source_id, r.need.record_id) for r in recs if r.need.entity == entity]
            links.update({(s, entity, i): lk for (s, i), lk in self.store.record_links(entity, keys).items()})
        for r in recs:
            if r.result is not None:
                continue
            if r.record is None:
                log.info("source %s #%s of %s no longer exists; the deal goes without it",
                         NOUN[r.need.entity], r.need.record_id, r.need.source_id)
                r.result = None
                r.action = "gone"
                continue
            try:
                r.target = mapping.transform(r.record, r.spec, r.need.entity, r.ctx, r.requisite)
            except PermanentError as exc:
                r.result = exc
                continue
            r.print = mapping.fingerprint(r.target)
            r.link = links.get(r.need.key)
            lk = r.link
            if lk is not None and lk.state == "matched" and lk.target_deal_id:
                r.result = lk.target_deal_id  # an ESB record linked by a match rule: never written
            elif lk is None or lk.state != "linked" or not lk.target_deal_id:
                r.action = "find"
            elif lk.fingerprint == r.print or not r.need.update:
                r.result = lk.target_deal_id
            else:
                r.action, r.target_id = "update", lk.target_deal_id

    # --- find --------------------------------------------------------------------------------

    def _find(self, recs: Sequence[_Rec]) -> None:
        """One target batch: stamps and match rules of records to find, values of records to update."""
        cmds = _value_reads([r for r in recs if r.action == "update" and r.target and r.target.multi])
        for entity in (COMPANY, CONTACT):
            finding = [r for r in recs if r.need.entity == entity and r.action == "find"]
            if not finding:
                continue
            by_prefix: dict[str, list[_Rec]] = defaultdict(list)
            for r in finding:
                by_prefix[r.prefix].append(r)
            for prefix, items in by_prefix.items():
                for n, chunk in enumerate(_chunks(items, STAMPS)):
                    cmds[f"s{TAG[entity]}{prefix}_{n}"] = (_list(entity, {
                        "=ORIGINATOR_ID": f"{ORIGINATOR}:{prefix}", "@ORIGIN_ID": [r.need.record_id for r in chunk]},
                        ["ID", "ORIGINATOR_ID", "ORIGIN_ID"], multi=False), chunk)
            sect = section(finding[0].spec, entity)
            for rule in sect.rules if sect else []:
                with_values = [r for r in finding if rule in _rules(r) and match_values(r.target, rule,
                                                                                          r.requisite)]
                cmds.update(_rule_commands(entity, rule, with_values))
        for name, reply, chunk in read_batches(self.target, cmds, chunk_fail):
            rows = reply.get(name)
            if name.startswith("v"):
                got = {str(row.get("ID")): row for row in _rows(rows)}
                for r in chunk:
                    r.current = got.get(str(r.target_id))
                    if r.current is None:  # deleted on the target: find it by its stamp (none: create)
                        r.action, r.target_id, r.link = "find", None, None
                continue
            rule = _rule_of(name)
            for r in chunk:
                r.hits.setdefault(rule, [])
                r.hits[rule] += _hits(rule, r, rows, len(chunk) == 1)
        # a findbycomm answer for several records names the hits but not whose value they hold
        self._resolve([r for r in recs if r.open and any("?" in h for h in r.hits.values())])
        # records that were to be updated but vanished on the target were only just marked "find"
        vanished = [r for r in recs if r.open and r.action == "find" and "stamp" not in r.hits]
        if vanished:
            self._find(vanished)

    def _resolve(self, recs: Sequence[_Rec]) -> None:
        """Read the records findbycomm named for groups and keep, per source record, those holding
        one of its values."""
        if not recs:
            return
        wanted: dict[str, set[str]] = defaultdict(set)
        for r in recs:
            for ids in r.hits.values():
                wanted[r.need.entity] |= {i for i in ids if i != "?"}
        found: dict[str, dict[str, dict[str, Any]]] = {}
        for entity, hit_ids in wanted.items():
            cmds: dict[str, tuple[Command, list[_Rec]]] = {
                f"h{TAG[entity]}{n}": (_list(entity, {"@ID": chunk}, ["ID"]), [])
                for n, chunk in enumerate(_chunks(sorted(hit_ids), PAGE))}
            rows: dict[str, dict[str, Any]] = {}
            for name, reply, _ in read_batches(self.target, cmds, chunk_fail):
                rows.update({str(row.get("ID")): row for row in _rows(reply.get(name))})
            found[entity] = rows
        for r in recs:
            for rule, ids in list(r.hits.items()):
                if rule not in ("phone", "email"):
                    continue
                mine = {normalize(rule.upper(), v) for v in match_values(r.target, rule, r.requisite)}
                candidates = [i for i in ids if i != "?"]
                r.hits[rule] = _oldest([i for i in candidates if mine & {
                    normalize(rule.upper(), e.get("VALUE")) for e in found.get(r.need.entity, {}).get(i, {}).get(
                        rule.upper()) or [] if isinstance(e, Mapping)}])

    # --- decide ------------------------------------------------------------------------------

    def _decide(self, recs: Sequence[_Rec]) -> None:
        now = time.time()
        window = self.config.target.settle_seconds
        for r in recs:
            if isinstance(r.result, RelayError):
                continue
            sect = section(r.spec, r.need.entity)
            assert sect is not None
            if r.hits.get("stamp"):  # the relay's own earlier create: keep it equal to the source's
                r.action, r.target_id, r.state = "update", r.hits["stamp"][0], "linked"
                continue
            rule = next((x for x in _rules(r) if x != "stamp" and r.hits.get(x)), None)
            if rule is not None and sect.on_match != "create":
                hit = r.hits[rule][0]
                what = f"{NOUN[r.need.entity]} #{r.need.record_id} of {r.need.source_id} matches target " \
                       f"{NOUN[r.need.entity]} #{hit} by {rule}"
                if sect.on_match == "fail":
                    r.result = PermanentError(f"{what}, and on_match is fail")
                elif sect.on_match == "link":
                    log.info("%s: linked to it (never written: on_match link)", what)
                    r.state, r.target_id, r.result = "matched", hit, hit
                    self.store.settle_records(r.need.entity, {(r.need.source_id, r.need.record_id):
                                                              Settled(hit, "matched", None)})
                else:
                    log.info("%s: linked and kept up to date (on_match update)", what)
                    r.action, r.target_id, r.state = "update", hit, "linked"
                continue
            lk = r.link
            if lk is not None and lk.state == "creating" and now < lk.updated_at + window:
                r.result = _wait(f"an earlier create of source {NOUN[r.need.entity]} #{r.need.record_id} may still "
                                 "land on the target", lk.updated_at + window - now)
                continue
            r.action = "create"
        # updates of records found by stamp or match need their current multi-fields
        need_values = [r for r in recs if r.open and r.action == "update" and r.current is None and r.target
                       and r.target.multi]
        if need_values:
            self._values(need_values)

    def _values(self, recs: Sequence[_Rec]) -> None:
        for name, reply, chunk in read_batches(self.target, _value_reads(recs), chunk_fail):
            got = {str(row.get("ID")): row for row in _rows(reply.get(name))}
            for r in chunk:
                r.current = got.get(str(r.target_id), {})

    # --- write -------------------------------------------------------------------------------

    def _write(self, recs: Sequence[_Rec]) -> None:
        creates = [r for r in recs if r.action == "create"]
        window = self.config.target.settle_seconds
        for entity in (COMPANY, CONTACT):
            mine = [r for r in creates if r.need.entity == entity]
            claimed = self.store.claim_creates(entity, [(r.need.source_id, r.need.record_id) for r in mine], window)
            for r in mine:
                if (r.need.source_id, r.need.record_id) not in claimed:
                    r.result = _wait(f"another worker is creating source {NOUN[entity]} #{r.need.record_id} "
                                     "on the target", 3.0)
        work = [r for r in recs if r.open]
        for chunk in pack(work, lambda r: len(self._commands(r, 0))):
            cmds: dict[str, Command] = {}
            for i, r in enumerate(chunk):
                cmds.update(self._commands(r, i))
            try:
                reply = self.target.batch(cmds, write=True)
            except RelayError as exc:
                for r in chunk:
                    r.result = exc  # creates keep their claim: the reply may be lost, not the create
                continue
            self._take(chunk, reply)

    def _commands(self, r: _Rec, i: int) -> dict[str, Command]:
        assert r.target is not None
        method = METHOD[r.need.entity]
        if r.action == "update":  # a record adopted by a match rule keeps its own ORIGINATOR_ID/ORIGIN_ID
            return {f"u{i}": Command(f"{method}.update", {"id": r.target_id,
                                                          "fields": r.target.update(r.current or {})})}
        cmds = {f"c{i}": Command(f"{method}.add", {"fields": {**r.target.fields, **r.stamp}})}
        sect = section(r.spec, r.need.entity)
        if r.target.requisite and sect is not None and sect.requisite is not None:
            name = str(r.target.fields.get("TITLE") or r.target.fields.get("LAST_NAME") or "Requisite")
            cmds[f"q{i}"] = Command("crm.requisite.add", {"fields": {
                "ENTITY_TYPE_ID": ENTITY_TYPE_IDS[r.need.entity], "ENTITY_ID": Ref(f"c{i}"),
                "PRESET_ID": sect.requisite.preset_id, "NAME": name, **r.target.requisite}})
        return cmds

    def _take(self, chunk: Sequence[_Rec], reply: BatchReply) -> None:
        settled: dict[str, dict[tuple[str, str], Settled]] = defaultdict(dict)
        refused: dict[str, list[tuple[str, str]]] = defaultdict(list)
        lost: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for i, r in enumerate(chunk):
            key = (r.need.source_id, r.need.record_id)
            try:
                answer = reply.get(f"c{i}" if r.action == "create" else f"u{i}")
                if r.action == "create":
                    r.target_id = str(answer)
            except NotFound as exc:
                lost[r.need.entity].append(key)
                error = TransientError(f"target {NOUN[r.need.entity]} #{r.target_id} no longer exists; "
                                       "looking for it by its stamp")
                error.retry_after = 0.0
                r.result = error if r.action == "update" else exc
                continue
            except RelayError as exc:
                if r.action == "create":
                    refused[r.need.entity].append(key)
                r.result = exc
                continue
            if f"q{i}" in reply.errors:
                log.warning("the requisite of new target %s #%s was not added: %s", NOUN[r.need.entity],
                            r.target_id, reply.errors[f"q{i}"])
            r.result = r.target_id
            settled[r.need.entity][key] = Settled(str(r.target_id), "linked", r.print)
        for entity, facts in settled.items():
            self.store.settle_records(entity, facts)
        for entity, keys in refused.items():
            self.store.drop_claims(entity, keys)
        for entity, keys in lost.items():
            self.store.lose_records(entity, keys)


# --- helpers -------------------------------------------------------------------------------------


def chunk_fail(chunk: Sequence[_Rec], error: RelayError) -> None:
    """A find/read command failed: its records fail with that error."""
    for r in chunk:
        if r.result is None:
            r.result = error


def _wait(text: str, seconds: float) -> TransientError:
    error = TransientError(f"{text}; looking again in {seconds:.0f}s")
    error.retry_after = seconds
    return error


def _value_reads(recs: Sequence[_Rec]) -> dict[str, tuple[Command, list[_Rec]]]:
    """Reads of the target records' current multi-fields (``v…`` commands), 50 a command."""
    cmds: dict[str, tuple[Command, list[_Rec]]] = {}
    for entity in (COMPANY, CONTACT):
        mine = [r for r in recs if r.need.entity == entity]
        for n, chunk in enumerate(_chunks(mine, PAGE)):
            cmds[f"v{TAG[entity]}{n}"] = (_list(entity, {"@ID": [r.target_id for r in chunk]}, ["ID"]), chunk)
    return cmds


def _rules(r: _Rec) -> list[str]:
    sect = section(r.spec, r.need.entity)
    return sect.rules if sect else []


def _uf_names(sect: Any) -> list[str]:
    names = {fs.from_ for fs in sect.fields.values() if fs.from_}
    return sorted(n for n in names if n.startswith("UF_"))


def _source_reads(spec: Sections, ids: Mapping[str, Sequence[str]],
                  ) -> dict[str, tuple[Command, str, bool, list[str]]]:
    """The source reads of these clients: name -> (command, entity, reads requisites, ids)."""
    out: dict[str, tuple[Command, str, bool, list[str]]] = {}
    for entity in (COMPANY, CONTACT):
        sect = section(spec, entity)
        wanted = list(dict.fromkeys(ids.get(entity) or []))
        if not wanted or sect is None:
            continue
        select = ["*", "UF_*", *MULTI_FIELDS, *_uf_names(sect)]
        for n, chunk in enumerate(_chunks(wanted, PAGE)):
            out[f"{TAG[entity]}{n}"] = (Command(f"{METHOD[entity]}.list", {
                "filter": {"@ID": chunk}, "select": select, "order": {"ID": "ASC"}}), entity, False, chunk)
        if _wants_requisites(sect):
            for n, chunk in enumerate(_chunks(wanted, REQUISITE_OWNERS)):
                out[f"rq{TAG[entity]}{n}"] = (Command("crm.requisite.list", {
                    "filter": {"=ENTITY_TYPE_ID": ENTITY_TYPE_IDS[entity], "@ENTITY_ID": chunk},
                    "order": {"ID": "ASC"}}), entity, True, chunk)
    return out


def _by_owner(result: Any, requisites: bool) -> dict[str, dict[str, Any]]:
    """Rows by record id (requisites: by owner, the first requisite of each)."""
    return {str(row.get("ENTITY_ID" if requisites else "ID")): row for row in reversed(_rows(result))}


def _wants_requisites(sect: Any) -> bool:
    return sect.requisite is not None or any(r.startswith("requisite:") for r in sect.rules)


def _chunks(items: Sequence[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def _rows(result: Any) -> list[dict[str, Any]]:
    return [row for row in result or [] if isinstance(row, dict)] if isinstance(result, list) else []


def _list(entity: str, flt: Mapping[str, Any], select: list[str], multi: bool = True) -> Command:
    columns = [*select, *(MULTI_FIELDS if multi else ())]
    return Command(f"{METHOD[entity]}.list", {"filter": dict(flt), "select": columns, "order": {"ID": "ASC"}})


def _rule_commands(entity: str, rule: str, recs: Sequence[_Rec]) -> dict[str, tuple[Command, list[_Rec]]]:
    cmds: dict[str, tuple[Command, list[_Rec]]] = {}
    tag = f"{TAG[entity]}{rule.replace(':', '_')}"
    if rule in ("phone", "email"):
        group: list[_Rec] = []
        values: list[str] = []
        n = 0
        for r in recs:  # records whose values fit one command share it (at most 20 values)
            mine = match_values(r.target, rule, r.requisite)[:COMM]
            if group and len(values) + len(mine) > COMM:
                cmds[f"m{tag}_{n}"] = (_findbycomm(entity, rule, values), group)
                group, values, n = [], [], n + 1
            group.append(r)
            values += mine
        if group:
            cmds[f"m{tag}_{n}"] = (_findbycomm(entity, rule, values), group)
        return cmds
    if rule.startswith("requisite:"):
        name = rule.split(":", 1)[1]
        for n, chunk in enumerate(_chunks(list(recs), REQUISITE_OWNERS)):
            values = [match_values(r.target, rule, r.requisite)[0] for r in chunk]
            cmds[f"m{tag}_{n}"] = (Command("crm.requisite.list", {
                "filter": {"=ENTITY_TYPE_ID": ENTITY_TYPE_IDS[entity], f"@{name}": values},
                "select": ["ID", "ENTITY_ID", name], "order": {"ID": "ASC"}}), chunk)
        return cmds
    if rule == "title" and entity == COMPANY:
        for n, chunk in enumerate(_chunks(list(recs), STAMPS)):
            titles = [match_values(r.target, rule, None)[0] for r in chunk]
            cmds[f"m{tag}_{n}"] = (_list(entity, {"@TITLE": titles}, ["ID", "TITLE"], multi=False), chunk)
    return cmds


def _findbycomm(entity: str, rule: str, values: list[str]) -> Command:
    return Command("crm.duplicate.findbycomm", {"type": rule.upper(), "values": values,
                                                "entity_type": DUP_TYPE[entity]})


def _rule_of(name: str) -> str:
    if name.startswith("s"):
        return "stamp"
    body = name[3:].rsplit("_", 1)[0]  # m<co|cn><rule>_<n>
    return body.replace("requisite_", "requisite:", 1)


def _oldest(ids: Iterable[str]) -> list[str]:
    return sorted(dict.fromkeys(ids), key=lambda i: int(i) if i.isdigit() else 0)


def _hits(rule: str, r: _Rec, rows: Any, alone: bool) -> list[str]:
    """Target ids a rule's answer names for this record, re-checked against its values where the
    answer carries them; ``"?"`` marks a findbycomm answer shared by several records."""
    if rule == "stamp":
        return _oldest(str(row.get("ID")) for row in _rows(rows)
                       if all(str(row.get(k, "")) == v for k, v in r.stamp.items()))
    if rule in ("phone", "email"):
        ids = rows.get(DUP_TYPE[r.need.entity], []) if isinstance(rows, Mapping) else []
        found = _oldest(str(i) for i in ids if str(i).isdigit())
        return found if alone or not found else [*found, "?"]
    values = set(match_values(r.target, rule, r.requisite))
    if rule.startswith("requisite:"):
        name = rule.split(":", 1)[1]
        return _oldest(str(row.get("ENTITY_ID")) for row in _rows(rows) if str(row.get(name) or "").strip() in values)
    return _oldest(str(row.get("ID")) for row in _rows(rows) if str(row.get("TITLE") or "").strip() in values)
