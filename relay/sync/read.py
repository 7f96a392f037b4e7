"""Read many source deals per command: the deals of a round with ``crm.deal.list`` filtered by their
ids, their product rows with one ``crm.item.productrow.list`` filtered by owner ids — 50 commands a
``batch``, so one request reads up to 1,250 deals.

* ``crm.deal.list`` takes ``@ID`` with an array; ``select`` ``*`` + ``UF_*`` leaves out multiple
  custom fields, so the mapping's custom fields are named too; a page holds 50 deals, so one command
  asks for at most 50 ids (``api-reference/crm/deals/crm-deal-list.md``).
* ``crm.item.productrow.list`` requires ``=ownerType`` (``D`` for deals) and ``=ownerId``, which takes
  an array; rows come 50 a page in camelCase, so one command asks for the rows of 25 deals, and pages
  past the first are asked for in a second batch when ``total`` says there are more
  (``api-reference/crm/universal/product-rows/crm-item-productrow-list.md``).
  Rows are turned into the upper-case keys of ``crm.deal.productrows.get``, which the mapping uses.
* ``CONTACT_IDS`` is not returned by ``crm.deal.list`` (``bitrix24-protocol.md`` §5.1); when the mapping
  relays contacts, ``crm.item.list`` (``entityTypeId`` 2, ``@id``, ``select`` ``contactIds``, 50 a page —
  ``api-reference/crm/universal/crm-item-list.md``) gives every bound contact of 50 deals per command,
  put into the deal as ``CONTACT_IDS``.  If that command fails, ``CONTACT_ID`` (the primary) is used.

A deal missing from the list answer does not exist (any more): it is reported as ``None``.  When a
portal refuses one of these list commands (a permanent error: an older portal, a changed filter rule),
the deals concerned are read the classic way instead — ``crm.deal.get`` + ``crm.deal.productrows.get``,
two commands a deal — so a portal that lacks the newer methods is slower, never stuck.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relay.errors import NotFound, PermanentError, RelayError
from relay.mapping.deal import MappingSpec, parse_template
from relay.portal.client import PortalClient
from relay.portal.protocol import MAX_BATCH, BatchReply, Command

log = logging.getLogger(__name__)
PAGE = 50
ROW_OWNERS = 25
#: camelCase keys of crm.item.productrow.list -> the keys of crm.deal.productrows.get
ROW_KEYS = {"id": "ID", "ownerId": "OWNER_ID", "productId": "PRODUCT_ID", "productName": "PRODUCT_NAME",
            "price": "PRICE", "quantity": "QUANTITY", "discountTypeId": "DISCOUNT_TYPE_ID",
            "discountRate": "DISCOUNT_RATE", "discountSum": "DISCOUNT_SUM", "taxRate": "TAX_RATE",
            "taxIncluded": "TAX_INCLUDED", "measureCode": "MEASURE_CODE", "measureName": "MEASURE_NAME",
            "sort": "SORT"}


@dataclass(frozen=True)
class Read:
    """One source deal as read: its fields and product rows."""

    deal: dict[str, Any]
    rows: list[dict[str, Any]]


Answer = Read | RelayError | None  # None: the deal does not exist


def source_fields(spec: MappingSpec) -> list[str]:
    """Custom fields the mapping reads (named in ``select``: ``UF_*`` leaves out multiple ones)."""
    names: set[str] = set()
    for fs in spec.fields.values():
        if fs.from_:
            names.add(fs.from_)
        if fs.template:
            names |= {ref for is_ref, ref in parse_template(fs.template) if is_ref}
    names |= set(spec.relayed_marks) | set(spec.files.fields.values())
    return sorted(n for n in names if n.startswith("UF_"))


def deal_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``crm.item.productrow.list`` row in ``crm.deal.productrows.get``'s keys."""
    return {ROW_KEYS.get(k, k): v for k, v in row.items()}


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def read(client: PortalClient, deal_ids: Sequence[str], spec: MappingSpec,
         extra: Mapping[str, Command] | None = None, extra_out: dict[str, Any] | None = None) -> dict[str, Answer]:
    """Every deal of ``deal_ids`` with its rows (when the mapping relays rows), in few requests.

    ``extra`` commands ride along in the room left in the last batch (never adding a request); the
    results of those that ran go to ``extra_out`` by name."""
    ids = list(dict.fromkeys(deal_ids))
    select = ["*", "UF_*", *source_fields(spec)]
    cmds: dict[str, Command] = {}
    groups: dict[str, list[str]] = {}
    for n, group in enumerate(_chunks(ids, PAGE)):
        groups[f"d{n}"] = group
        cmds[f"d{n}"] = Command("crm.deal.list", {"filter": {"@ID": group}, "select": select,
                                                  "order": {"ID": "ASC"}})
    if spec.contacts is not None:  # CONTACT_IDS is not in crm.deal.list; crm.item.list has contactIds
        for n, group in enumerate(_chunks(ids, PAGE)):
            groups[f"c{n}"] = group
            cmds[f"c{n}"] = Command("crm.item.list", {"entityTypeId": 2, "filter": {"@id": group},
                                                      "select": ["id", "contactIds"], "order": {"id": "ASC"}})
    if spec.products.enabled:  # 25 owners a command: two rows a deal still fit one page
        for n, group in enumerate(_chunks(ids, ROW_OWNERS)):
            groups[f"r{n}"] = group
            cmds[f"r{n}"] = _rows(group, 0)
    room = (-len(cmds)) % MAX_BATCH
    for name, command in list((extra or {}).items())[:room]:
        cmds[f"x{name}"], groups[f"x{name}"] = command, []
    out: dict[str, Answer] = {}
    deals: dict[str, dict[str, Any]] = {}
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    more: dict[str, Command] = {}
    contacts: dict[str, list[str]] = {}
    for name, reply in _run(client, cmds, groups, out):
        result = reply.get(name)
        if name.startswith("x"):
            if extra_out is not None:
                extra_out[name[1:]] = result
            continue
        if name.startswith("d"):
            deals.update({str(d.get("ID")): d for d in result or [] if isinstance(d, dict)})
            continue
        if name.startswith("c"):
            items = result.get("items") if isinstance(result, Mapping) else None
            for item in items or []:
                if isinstance(item, Mapping):
                    contacts[str(item.get("id"))] = [str(i) for i in item.get("contactIds") or []]
            continue
        _take_rows(result, rows)
        total = reply.totals.get(name)
        for start in range(PAGE, int(total or 0), PAGE):
            more[f"{name}p{start}"] = _rows(groups[name], start)
            groups[f"{name}p{start}"] = groups[name]
    for name, reply in _run(client, more, groups, out):
        _take_rows(reply.get(name), rows)
    legacy = [d for d, answer in out.items() if isinstance(answer, PermanentError)]
    for d in legacy:
        del out[d]
    if legacy:
        _read_one_by_one(client, legacy, spec, out, deals, rows)
    for deal_id in ids:
        if deal_id in out:
            continue
        deal = deals.get(deal_id)
        if deal is not None and deal_id in contacts:
            deal["CONTACT_IDS"] = contacts[deal_id]  # every bound contact, primary first
        out[deal_id] = None if deal is None else Read(deal, sorted(
            rows.get(deal_id, []), key=lambda r: (_number(r.get("SORT")), _number(r.get("ID")))))
    return out


def _read_one_by_one(client: PortalClient, ids: list[str], spec: MappingSpec, out: dict[str, Answer],
                     deals: dict[str, dict[str, Any]], rows: dict[str, list[dict[str, Any]]]) -> None:
    """The classic read, two commands a deal (``crm-deal-get.md``, ``crm-deal-productrows-get.md``)."""
    log.warning("source %s refused a list read; reading %d deal(s) one by one", client.name, len(ids))
    cmds: dict[str, Command] = {}
    groups: dict[str, list[str]] = {}
    for deal_id in ids:
        cmds[f"g{deal_id}"], groups[f"g{deal_id}"] = Command("crm.deal.get", {"id": deal_id}), [deal_id]
        if spec.products.enabled:
            cmds[f"p{deal_id}"] = Command("crm.deal.productrows.get", {"id": deal_id})
            groups[f"p{deal_id}"] = [deal_id]
    for name, reply in _run(client, cmds, groups, out, missing_ok=True):
        result, deal_id = reply.get(name), name[1:]
        if name.startswith("g") and isinstance(result, dict):
            deals[deal_id] = result
        elif isinstance(result, list):
            rows[deal_id] = [dict(r) for r in result if isinstance(r, Mapping)]
        rows.setdefault(deal_id, [])


def _rows(owner_ids: list[str], start: int) -> Command:
    return Command("crm.item.productrow.list", {"filter": {"=ownerType": "D", "=ownerId": owner_ids},
                                               "start": start})


def _take_rows(result: Any, rows: dict[str, list[dict[str, Any]]]) -> None:
    found = result.get("productRows") if isinstance(result, Mapping) else result
    for row in found or []:
        if isinstance(row, Mapping):
            converted = deal_row(row)
            rows[str(converted.get("OWNER_ID"))].append(converted)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _run(client: PortalClient, cmds: Mapping[str, Command], groups: Mapping[str, list[str]],
         out: dict[str, Answer], missing_ok: bool = False) -> Iterable[tuple[str, BatchReply]]:
    """Send ``cmds`` 50 a batch; yield (command, reply) for those that answered; a failed request or
    command marks its deals with the error in ``out`` (``missing_ok``: "Not found" only skips)."""
    names = list(cmds)
    for i in range(0, len(names), MAX_BATCH):
        chunk = {n: cmds[n] for n in names[i:i + MAX_BATCH]}
        try:
            reply = client.batch(chunk, write=False)
        except RelayError as exc:
            for n in chunk:
                out.update({d: exc for d in groups[n] if d not in out})
            continue
        for n in chunk:
            if n in reply.errors and missing_ok and isinstance(reply.errors[n], NotFound):
                continue
            if n in reply.errors:
                out.update({d: reply.errors[n] for d in groups[n] if d not in out})
            else:
                yield n, reply
