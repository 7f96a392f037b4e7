"""A dry run (``relay preview``): read, map and show what a transfer would write — and write nothing.

For a partner deal: the deal and its rows are read as a transfer reads them (:mod:`relay.sync.read`),
translated with the source's mapping, and compared with the linked target deal (``crm.deal.get`` +
``crm.deal.productrows.get``).  For a 1C record: the data stored with its job are translated with the
base's mapping and compared with the linked target item (``crm.item.get``,
``crm.item.productrow.list``).  Every request is a read (``write=False``); the store is only read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.config import RelayConfig
from relay.errors import PermanentError, RelayError
from relay.mapping.deal import in_trigger, map_fields, relayed_mark, transform
from relay.mapping.onec import ENTITY_TYPE, camel
from relay.mapping.onec import transform as transform_onec
from relay.models import Job
from relay.portal.client import PortalClient
from relay.portal.protocol import Command
from relay.store import Store
from relay.sync.onec import OWNER_TYPE
from relay.sync.read import read as read_deals

CHANGED, SAME = "changed", "same"
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?([+-]\d{2}:?\d{2}|Z)?)?$")


@dataclass
class Preview:
    """What one transfer would do."""

    source_id: str
    record: str  # source deal id or 1C record key
    action: str = ""  # create | update | skip | error
    reason: str = ""  # why skipped / the error
    method: str = ""  # the write it would send
    target_id: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # what would be sent
    rows: list[dict[str, Any]] | None = None
    diff: list[tuple[str, Any, Any]] = field(default_factory=list)  # (field, now on the target, would be)
    rows_diff: str = ""  # "" (no rows / nothing to compare) | changed | same
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"source": self.source_id, "record": self.record, "action": self.action, "reason": self.reason,
                "method": self.method, "target_id": self.target_id, "fields": self.fields, "rows": self.rows,
                "diff": [{"field": f, "target": old, "new": new} for f, old, new in self.diff],
                "rows_diff": self.rows_diff, "notes": self.notes}


def _text(value: Any) -> Any:
    """A value as compared: numbers by value, lists element-wise, empty as ``""``."""
    if value in (None, [], (), ""):
        return ""
    if isinstance(value, (list, tuple)):
        items = [_text(v) for v in value if v not in (None, "")]
        return items if items else ""
    text = str(value).strip()
    if _ISO.match(text):
        return text
    try:
        number = float(text)
    except ValueError:
        return text
    return format(number, "g") if text.replace(".", "", 1).replace("-", "", 1).isdigit() else text


def _same(old: Any, new: Any) -> bool:
    a, b = _text(old), _text(new)
    if a == b:
        return True
    if isinstance(a, str) and isinstance(b, str) and _ISO.match(a) and _ISO.match(b):
        # a date field keeps the day only: a target value at midnight matches any time of that day
        return a[:10] == b[:10] and (a[10:19] in ("", "T00:00:00") or b[10:19] in ("", "T00:00:00"))
    return False


def diff_fields(current: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """Fields whose value would change (pure)."""
    return [(name, current.get(name), value) for name, value in new.items() if not _same(current.get(name), value)]


def _rows_same(current: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> bool:
    def norm(rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        return [tuple(_text(r.get(k)) for k in keys) for r in rows]
    return norm(current) == norm(new)


def preview_deal(config: RelayConfig, store: Store, source: PortalClient, target: PortalClient,
                 source_id: str, deal_id: str) -> Preview:
    """What relaying this partner deal now would write."""
    out = Preview(source_id, deal_id)
    src = config.source(source_id)
    if src is None:
        raise KeyError(source_id)
    spec = config.mappings[source_id]
    answer = read_deals(source, [deal_id], spec).get(deal_id)
    if isinstance(answer, RelayError):
        out.action, out.reason = "error", f"could not read the deal: {answer}"
        return out
    if answer is None:
        out.action, out.reason = "skip", "the source has no such deal"
        return out
    mark = relayed_mark(answer.deal, spec)
    if mark is not None:
        out.action, out.reason = "skip", f"created by a relay ({mark}); not relayed back"
        return out
    if not in_trigger(answer.deal, spec):
        out.action, out.reason = "skip", f"stage {answer.deal.get('STAGE_ID')} is not a trigger stage"
        return out
    try:
        mapped = transform(answer.deal, answer.rows, spec, src.names)
    except PermanentError as exc:
        out.action, out.reason = "error", str(exc)
        return out
    if spec.company is not None or spec.contacts is not None:
        out.notes.append("the deal's company and contacts are found or created on the target during the transfer "
                         "(COMPANY_ID / CONTACT_IDS are not shown)")
    link = store.link(source_id, deal_id)
    out.rows = mapped.rows
    if link is None or link.state != "linked" or not link.target_deal_id:
        out.action, out.method, out.fields = "create", "crm.deal.add", mapped.fields
        out.notes.append("no link in this database: the transfer first looks the deal's stamp up on the target, "
                         "and updates the deal it finds instead of creating one")
        return out
    out.action, out.method, out.target_id, out.fields = "update", "crm.deal.update", link.target_deal_id, \
        mapped.update_fields
    try:
        reply = target.batch({"d": Command("crm.deal.get", {"id": link.target_deal_id}),
                              "r": Command("crm.deal.productrows.get", {"id": link.target_deal_id})}, write=False)
    except RelayError as exc:
        out.notes.append(f"could not read target deal {link.target_deal_id}: {exc}")
        return out
    if "d" in reply.errors:
        out.notes.append(f"target deal {link.target_deal_id}: {reply.errors['d']}")
        return out
    current = reply.results.get("d") or {}
    out.diff = diff_fields(current, mapped.update_fields)
    if mapped.rows is not None and "r" not in reply.errors:
        keys = ("PRODUCT_ID", "PRODUCT_NAME", "PRICE", "QUANTITY")
        same = _rows_same(reply.results.get("r") or [], mapped.rows, keys)
        out.rows_diff = SAME if same else CHANGED
    return out


def preview_record(config: RelayConfig, store: Store, target: PortalClient, job: Job) -> Preview:
    """What relaying the 1C record stored with this job would write."""
    out = Preview(job.source_id, job.deal_id)
    base = config.onec_base(job.source_id)
    payload = job.payload
    if base is None or not isinstance(payload.get("data"), dict):
        out.action, out.reason = "error", "not a stored 1C record (or its base is no longer configured)"
        return out
    spec, kind, data = config.onec_mappings[base.id], str(payload.get("kind")), dict(payload["data"])
    ctx = base.names
    if payload.get("action") == "delete":
        out.action, out.reason = "skip", "a deletion: the mapping's deletes policy applies to the linked record"
        return out
    if kind == "client":
        if spec.clients is None:
            out.action, out.reason = "skip", "the mapping has no clients section"
            return out
        fields, update = map_fields(data, spec.clients.fields, spec.clients.create_only, spec, ctx)
        link = store.record_links("company", [(base.id, job.deal_id)]).get((base.id, job.deal_id))
        linked = link is not None and link.state == "linked" and link.target_deal_id
        out.action, out.method = ("update", "crm.company.update") if linked else ("create", "crm.company.add")
        out.fields, out.target_id = (update if linked else fields), (link.target_deal_id if linked and link else None)
        out.notes.append("a new company is created only when the mapping's match rules find none on the target")
        return out
    doc = spec.incoming if kind == "incoming" else spec.outgoing
    if doc is None:
        out.action, out.reason = "skip", f"the mapping has no {kind} section"
        return out
    try:
        mapped = transform_onec(data, spec, doc, ctx)
    except PermanentError as exc:
        out.action, out.reason = "error", str(exc)
        return out
    out.rows = mapped.rows
    type_id = ENTITY_TYPE[doc.target]
    link = store.record_links(kind, [(base.id, job.deal_id)]).get((base.id, job.deal_id))
    if link is None or link.state != "linked" or not link.target_deal_id:
        out.action, out.method = "create", f"crm.item.add (entityTypeId {type_id})"
        out.fields = {camel(k): v for k, v in mapped.fields.items()}
        return out
    out.action, out.method, out.target_id = "update", f"crm.item.update (entityTypeId {type_id})", link.target_deal_id
    out.fields = {camel(k): v for k, v in mapped.update_fields.items()}
    try:
        reply = target.batch({
            "i": Command("crm.item.get", {"entityTypeId": type_id, "id": link.target_deal_id,
                                          "useOriginalUfNames": "Y"}),
            "r": Command("crm.item.productrow.list", {"filter": {"=ownerType": OWNER_TYPE[doc.target],
                                                                 "=ownerId": link.target_deal_id}})}, write=False)
    except RelayError as exc:
        out.notes.append(f"could not read target item {link.target_deal_id}: {exc}")
        return out
    if "i" in reply.errors:
        out.notes.append(f"target item {link.target_deal_id}: {reply.errors['i']}")
        return out
    current = reply.results.get("i")
    item = current.get("item", {}) if isinstance(current, Mapping) else {}
    out.diff = diff_fields(item, out.fields)
    rows = reply.results.get("r")
    if "r" not in reply.errors and isinstance(rows, Mapping):
        same = _rows_same(rows.get("productRows") or [], mapped.rows, ("productId", "productName", "price", "quantity"))
        out.rows_diff = SAME if same else CHANGED
    return out


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def render(p: Preview, target_host: str = "") -> str:
    """The preview as text for a terminal."""
    what = f"{p.source_id} {p.record}"
    if p.action in ("skip", "error"):
        return f"{what}: would not be relayed ({p.action}): {p.reason}\n"
    lines = [f"{what}: would {p.action.upper()}"
             + (f" target record {p.target_id}" if p.target_id else " a new target record") + f" with {p.method}"]
    if p.target_id and target_host and p.method.startswith("crm.deal"):
        lines[0] += f" (https://{target_host}/crm/deal/details/{p.target_id}/)"
    lines.append("fields:")
    lines += [f"  {k}: {_show(v)}" for k, v in p.fields.items()]
    if p.action == "update":
        lines.append("changes against the target record now:" if p.diff else "no field would change")
        lines += [f"  {k}: {_show(old)} -> {_show(new)}" for k, old, new in p.diff]
    if p.rows is not None:
        lines.append(f"product rows ({len(p.rows)})" + (f": {p.rows_diff}" if p.rows_diff else "") + ":")
        lines += [f"  {_show(r)}" for r in p.rows]
    lines += [f"note: {n}" for n in p.notes]
    return "\n".join(lines) + "\nnothing was written (dry run)\n"
