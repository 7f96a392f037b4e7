"""REST methods ``crm.deal.*``, ``crm.category.list``, ``crm.status.list``.

Each handler takes the portal state and the decoded parameters and returns a :class:`Reply`
or raises :class:`EmuError`.  Doc paths are next to each handler.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from relay.emulator import deals, listing, rows
from relay.emulator.core import EmuError, Reply, invalid_id, param
from relay.emulator.schema import VISIBLE, describe_fields
from relay.emulator.state import PortalState
from relay.emulator.values import intval, php_str, strict_id

Handler = Callable[[PortalState, Mapping[str, Any]], Reply]


def _id(params: Mapping[str, Any]) -> int:
    deal_id = strict_id(param(params, "id"))
    if deal_id is None:
        raise invalid_id()
    return deal_id


def deal_get(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.get`` — ``api-reference/crm/deals/crm-deal-get.md``."""
    record = state.deal(_id(params))
    return Reply({k: copy.deepcopy(v) for k, v in record.items() if k in VISIBLE or k.startswith("UF_")})


def deal_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.list`` — ``api-reference/crm/deals/crm-deal-list.md``."""
    return listing.list_deals(state.config, list(state.deals.values()), params, state.tz)


def deal_add(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.add``: returns the new id as an integer — ``api-reference/crm/deals/crm-deal-add.md``."""
    return Reply(deals.create_deal(state, param(params, "fields")))


def deal_update(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.update``: returns ``true`` — ``api-reference/crm/deals/crm-deal-update.md``."""
    deals.update_deal(state, _id(params), param(params, "fields"))
    return Reply(True)


def deal_delete(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.delete``: returns ``true`` — ``api-reference/crm/deals/crm-deal-delete.md``."""
    deals.delete_deal(state, _id(params))
    return Reply(True)


def deal_fields(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.fields`` — ``api-reference/crm/deals/crm-deal-fields.md``."""
    return Reply(describe_fields(state.config))


def productrows_get(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.productrows.get`` — ``api-reference/crm/deals/crm-deal-productrows-get.md``."""
    return Reply(rows.get_rows(state, _id(params)))


def productrows_set(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.productrows.set`` replaces all rows — ``crm-deal-productrows-set.md``."""
    rows.set_rows(state, _id(params), param(params, "rows"))
    return Reply(True)


def category_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.category.list`` for deals — ``api-reference/crm/universal/category/crm-category-list.md``."""
    if intval(params.get("entityTypeId", 2)) != 2:
        raise EmuError(400, "NOT_FOUND", "Entity type is not supported by the emulator")
    cats = [
        {
            "id": cat,
            "name": state.config.category_names.get(cat, "General" if cat == 0 else f"Pipeline {cat}"),
            "sort": (i + 1) * 100,
            "entityTypeId": 2,
            "isDefault": "Y" if cat == state.config.default_category() else "N",
            "originId": "",
            "originatorId": "",
        }
        for i, cat in enumerate(sorted(state.config.categories))
    ]
    return Reply({"categories": cats}, total=len(cats))


def _stage_rows(state: PortalState) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for cat, stages in sorted(state.config.categories.items()):
        entity = "DEAL_STAGE" if cat == 0 else f"DEAL_STAGE_{cat}"
        for i, stage in enumerate(stages):
            status = stage.rsplit(":", 1)[-1]
            semantic = "S" if status == "WON" else "F" if status in ("LOSE", "APOLOGY") else None
            out.append({
                "ID": str(len(out) + 1), "ENTITY_ID": entity, "STATUS_ID": stage,
                "NAME": state.config.stage_names.get(stage) or status.replace("_", " ").capitalize(),
                "NAME_INIT": "",
                "SORT": str((i + 1) * 10), "SYSTEM": "Y" if i == 0 or semantic else "N",
                "CATEGORY_ID": str(cat), "COLOR": "#39A8EF", "SEMANTICS": semantic,
                "EXTRA": {"SEMANTICS": {"S": "success", "F": "failure"}.get(semantic or "", "process"),
                          "COLOR": "#39A8EF"},
            })
    return out


def status_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.status.list`` (deal stages only; ``NAME`` from ``stage_names``) —
    ``api-reference/crm/status/crm-status-list.md``."""
    flt = param(params, "filter") or {}
    found = _stage_rows(state)
    if isinstance(flt, Mapping):
        for key, wanted in flt.items():
            name = str(key).lstrip("=")
            found = [r for r in found if php_str(r.get(name)) == php_str(wanted)]
    return Reply(found)


HANDLERS: dict[str, Handler] = {
    "crm.deal.get": deal_get,
    "crm.deal.list": deal_list,
    "crm.deal.add": deal_add,
    "crm.deal.update": deal_update,
    "crm.deal.delete": deal_delete,
    "crm.deal.fields": deal_fields,
    "crm.deal.productrows.get": productrows_get,
    "crm.deal.productrows.set": productrows_set,
    "crm.category.list": category_list,
    "crm.status.list": status_list,
}
