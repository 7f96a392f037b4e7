"""Contacts of a deal: ``crm.deal.contact.items.get/set/delete``, ``crm.deal.contact.add/delete``,
and ``CONTACT_IDS``/``CONTACT_ID`` on ``crm.deal.add``/``crm.deal.update``.

Binding shape ``{CONTACT_ID, SORT, ROLE_ID, IS_PRIMARY}`` with integer ids —
``api-reference/crm/deals/contacts/crm-deal-contact-items-get.md``; ``items.set`` replaces all
bindings, primary = first ``IS_PRIMARY: Y`` else the first item, default ``SORT`` = ``(i+1)*10`` —
``crm-deal-contact-items-set.md``; ``crm.deal.contact.add`` returns ``false`` for an already bound
contact and makes the new one primary when the deal has none — ``crm-deal-contact-add.md``;
deleting the primary promotes the first remaining one — ``crm-deal-contact-delete.md``.
``crm.deal.get`` shows only the primary as ``CONTACT_ID``; ``CONTACT_IDS`` is never returned —
``api-reference/crm/deals/crm-deal-fields.md`` (protocol doc §5.1).

UNVERIFIED: a deal write with ``CONTACT_ID`` alone (no ``CONTACT_IDS``) replaces the bindings with
that contact; contact ids are not checked for existence; the ``SORT`` of ``crm.deal.contact.add``
without one is the last ``SORT`` + 10.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from relay.emulator import crm_methods
from relay.emulator.core import EmuError, Reply, param
from relay.emulator.state import PortalState
from relay.emulator.values import intval, php_str, strict_id

Handler = Callable[[PortalState, Mapping[str, Any]], Reply]


def _owner(state: PortalState, params: Mapping[str, Any], *, quoted: bool = False,
           not_found: str = "Not found.") -> int:
    deal_id = strict_id(param(params, "id"))
    if deal_id is None:
        name = "'ownerEntityID'" if quoted else "ownerEntityID"
        raise EmuError(400, "", f"The parameter {name} is invalid or not defined.")
    if deal_id not in state.deals:
        raise EmuError(400, "", not_found)
    return deal_id


def store(state: PortalState, deal_id: int, items: list[dict[str, Any]]) -> None:
    """Save bindings (exactly one primary when any) and mirror the primary into ``CONTACT_ID``."""
    primary = next((i for i in items if i["IS_PRIMARY"] == "Y"), items[0] if items else None)
    for item in items:
        item["IS_PRIMARY"] = "Y" if item is primary else "N"
    state.deal_contacts[deal_id] = items
    if deal_id in state.deals:
        state.deals[deal_id]["CONTACT_ID"] = str(primary["CONTACT_ID"]) if primary else None


def bindings(state: PortalState, deal_id: int) -> list[dict[str, Any]]:
    """Copies of a deal's bindings ordered by ``SORT``."""
    items = state.deal_contacts.get(deal_id, [])
    return [dict(i) for i in sorted(items, key=lambda i: i["SORT"])]


def _from_items(raw: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            continue
        contact_id = intval(item.get("CONTACT_ID"))
        if contact_id <= 0 or contact_id in seen:
            continue
        seen.add(contact_id)
        sort = intval(item["SORT"]) if php_str(item.get("SORT")) != "" else (index + 1) * 10
        out.append({"CONTACT_ID": contact_id, "SORT": sort, "ROLE_ID": 0,
                    "IS_PRIMARY": "Y" if php_str(item.get("IS_PRIMARY")).upper() == "Y" else "N"})
    return out


def set_ids(state: PortalState, deal_id: int, ids: list[int]) -> None:
    """Bindings from a plain id list (``CONTACT_IDS``): first is primary, ``SORT`` (i+1)*10."""
    store(state, deal_id, _from_items([{"CONTACT_ID": i} for i in ids]))


def _id_list(value: Any) -> list[int]:
    items = value if isinstance(value, list) else list(value.values()) if isinstance(value, Mapping) else [value]
    return [i for i in (intval(v) for v in items) if i > 0]


def apply_deal_fields(state: PortalState, deal_id: int, fields: Any) -> None:
    """Bind the contacts a deal write names (``CONTACT_IDS``, or ``CONTACT_ID`` alone)."""
    if not isinstance(fields, Mapping):
        return
    if "CONTACT_IDS" in fields:
        set_ids(state, deal_id, _id_list(fields["CONTACT_IDS"]))
    elif "CONTACT_ID" in fields:
        set_ids(state, deal_id, _id_list(fields["CONTACT_ID"])[:1])


def deal_add(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.add`` plus ``CONTACT_IDS`` bindings — ``api-reference/crm/deals/crm-deal-add.md``."""
    reply = crm_methods.deal_add(state, params)
    apply_deal_fields(state, int(reply.value), param(params, "fields"))
    return reply


def deal_update(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.update`` plus ``CONTACT_IDS`` bindings — ``api-reference/crm/deals/crm-deal-update.md``."""
    reply = crm_methods.deal_update(state, params)
    apply_deal_fields(state, int(strict_id(param(params, "id")) or 0), param(params, "fields"))
    return reply


def items_get(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.contact.items.get`` — ``crm-deal-contact-items-get.md``."""
    return Reply(bindings(state, _owner(state, params)))


def items_set(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.contact.items.set`` replaces all bindings — ``crm-deal-contact-items-set.md``."""
    deal_id = _owner(state, params)
    raw = param(params, "items")
    if isinstance(raw, Mapping):
        raw = list(raw.values())
    if raw in (None, ""):
        raw = []
    if not isinstance(raw, list):
        raise EmuError(400, "", "The parameter items must be array.")
    store(state, deal_id, _from_items(raw))
    return Reply(True)


def items_delete(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.contact.items.delete`` unbinds every contact — ``crm-deal-contact-items-delete.md``."""
    store(state, _owner(state, params, not_found="Not found"), [])
    return Reply(True)


def _contact_field(params: Mapping[str, Any]) -> tuple[Mapping[str, Any], int]:
    fields = param(params, "fields")
    if not isinstance(fields, Mapping):
        raise EmuError(400, "", "The parameter 'fields' must be array.")
    contact_id = intval(fields.get("CONTACT_ID"))
    if contact_id <= 0:
        raise EmuError(400, "", "The parameter 'fields' is not valid.")
    return fields, contact_id


def contact_add(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.contact.add``: ``false`` when already bound — ``crm-deal-contact-add.md``."""
    deal_id = _owner(state, params, quoted=True)
    fields, contact_id = _contact_field(params)
    items = bindings(state, deal_id)
    if any(i["CONTACT_ID"] == contact_id for i in items):
        return Reply(False)
    sort = intval(fields["SORT"]) if php_str(fields.get("SORT")) != "" else (items[-1]["SORT"] + 10 if items else 10)
    wants_primary = php_str(fields.get("IS_PRIMARY")).upper() == "Y" or not items
    new = {"CONTACT_ID": contact_id, "SORT": sort, "ROLE_ID": 0, "IS_PRIMARY": "Y" if wants_primary else "N"}
    if wants_primary:
        for item in items:
            item["IS_PRIMARY"] = "N"
    store(state, deal_id, [*items, new])
    return Reply(True)


def contact_delete(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.contact.delete``: ``false`` when not bound — ``crm-deal-contact-delete.md``."""
    deal_id = _owner(state, params, quoted=True)
    _fields, contact_id = _contact_field(params)
    items = bindings(state, deal_id)
    kept = [i for i in items if i["CONTACT_ID"] != contact_id]
    if len(kept) == len(items):
        return Reply(False)
    store(state, deal_id, kept)
    return Reply(True)


HANDLERS: dict[str, Handler] = {
    "crm.deal.add": deal_add,
    "crm.deal.update": deal_update,
    "crm.deal.contact.items.get": items_get,
    "crm.deal.contact.items.set": items_set,
    "crm.deal.contact.items.delete": items_delete,
    "crm.deal.contact.add": contact_add,
    "crm.deal.contact.delete": contact_delete,
}
