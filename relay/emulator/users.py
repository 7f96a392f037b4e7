"""``user.current``, ``profile`` and ``user.get``: the portal's users with ``ACTIVE`` and ``EMAIL``.

``user.get`` — ``api-reference/user/user-get.md``: every user, dismissed ones included (the ``ACTIVE``
filter "when set to *true*, excludes terminated users"), ``ID`` ascending unless ``sort``/``order``
name another field; the filter comes in ``filter``/``FILTER`` or as top-level keys (the page's examples
pass ``UF_DEPARTMENT`` at the top level), with the prefixes ``>=``, ``>``, ``<=``, ``<``, ``@``, ``!@``,
``%``, ``=%``, ``%=``, ``!%``, ``!=%``, ``!%=``, ``=``, ``!=``, ``!`` — a bare text key whose value holds
``%`` is a mask, as in the page's ``{"NAME": "Iv%"}`` example; "The results page size is always
static: 50 records" by ``start``, with ``total`` and, as every list method, ``next``
(``settings/how-to-call-rest-api/list-methods-pecularities.md``); ``start=-1`` skips the count
(``settings/performance/huge-data.md``); ``select`` with the ``*``/``UF_*`` masks skips unknown names.

UNVERIFIED: ``ACTIVE`` false (``N``) keeps only dismissed users; unknown filter keys are ignored; text
fields (``EMAIL``, names) compare case-insensitively, as the database's collation would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from relay.emulator import itemlist
from relay.emulator.core import Reply, param, php_truthy
from relay.emulator.state import PortalState
from relay.emulator.values import intval, php_str, sort_key

Handler = Callable[[PortalState, Mapping[str, Any]], Reply]
#: the fields of a ``user.get`` row (a subset of the doc's example), in its order
FIELDS: tuple[str, ...] = (
    "ID", "ACTIVE", "NAME", "LAST_NAME", "SECOND_NAME", "EMAIL", "WORK_POSITION", "UF_DEPARTMENT", "USER_TYPE",
)
_TEXT = frozenset({"ACTIVE", "NAME", "LAST_NAME", "SECOND_NAME", "EMAIL", "WORK_POSITION", "USER_TYPE"})
_NO = {"N", "n", "false", "FALSE", "False", "0", ""}


def user_row(state: PortalState, user_id: int) -> dict[str, Any]:
    """One user as ``user.get`` / ``user.current`` return it; ``EMAIL`` and ``ACTIVE`` from the config."""
    config = state.config
    first, _, last = config.users[user_id].partition(" ")
    return {
        "ID": str(user_id), "ACTIVE": user_id not in config.inactive_users, "NAME": first, "LAST_NAME": last,
        "SECOND_NAME": "", "EMAIL": config.user_emails.get(user_id, f"user{user_id}@{config.domain}"),
        "WORK_POSITION": "", "UF_DEPARTMENT": [1], "USER_TYPE": "employee",
    }


def user_current(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``user.current`` — ``api-reference/user/user-current.md``."""
    return Reply(user_row(state, state.config.user_id))


def profile(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``profile`` — ``api-reference/common/users/profile.md``."""
    user = user_row(state, state.config.user_id)
    return Reply({"ID": user["ID"], "ADMIN": True, "NAME": user["NAME"],
                  "LAST_NAME": user["LAST_NAME"], "PERSONAL_GENDER": "", "TIME_ZONE": ""})


def _yes_no(value: Any) -> Any:
    """An ``ACTIVE`` filter value as ``Y``/``N`` (lists item by item)."""
    if isinstance(value, list):
        return [_yes_no(v) for v in value]
    return "Y" if php_truthy(value) and php_str(value) not in _NO else "N"


def _filter(params: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level user fields plus ``filter``/``FILTER``, keys naming no user field dropped."""
    raw = param(params, "filter")
    merged = {**params, **(raw if isinstance(raw, Mapping) else {})}
    out: dict[str, Any] = {}
    for key, wanted in merged.items():
        op, name = itemlist.split_key(str(key))
        if name not in FIELDS:
            continue
        if name == "ACTIVE":
            wanted = _yes_no(wanted)
        elif op == "=" and name in _TEXT and not str(key).startswith("=") and "%" in php_str(wanted):
            key = f"=%{name}"  # {"NAME": "Iv%"} finds names starting with "Iv" (the doc's example)
        out[str(key)] = wanted
    return out


def _ordered(state: PortalState, rows: list[dict[str, Any]], params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``sort`` (a field) and ``order`` (``ASC``/``DESC``); ``ID`` ascending by default."""
    field, direction = param(params, "sort"), param(params, "order")
    if isinstance(direction, Mapping) and direction:  # order={"NAME": "DESC"} spelling
        field, direction = next(iter(direction.items()))
    name = php_str(field).upper()
    if name not in FIELDS or name == "ID":
        return sorted(rows, key=lambda r: int(r["ID"]), reverse=php_str(direction).upper() == "DESC")
    return sorted(rows, key=lambda r: sort_key(r[name], state.tz), reverse=php_str(direction).upper() == "DESC")


def _columns(select: Any) -> list[str]:
    names = [php_str(s) for s in select] if isinstance(select, list) else []
    out: dict[str, None] = {}
    for name in names:
        if name == "*":
            out.update(dict.fromkeys(FIELDS))
        elif name == "UF_*":
            out.update(dict.fromkeys(f for f in FIELDS if f.startswith("UF_")))
        elif name in FIELDS:
            out[name] = None
    return list(out) or list(FIELDS)


def user_get(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``user.get``: filter, sort, pages of 50 with ``total``/``next`` (module docstring)."""
    matches = itemlist.build_filter(_filter(params), FIELDS, state.tz, text=_TEXT)
    rows = [user_row(state, u) for u in state.config.users]
    found = [r for r in rows if matches({**r, "ACTIVE": "Y" if r["ACTIVE"] else "N"})]
    found = _ordered(state, found, params)
    columns = _columns(param(params, "select"))
    found = [{k: r[k] for k in columns} for r in found]
    start = intval(param(params, "start", 0))
    if start == -1:
        return Reply(found[:itemlist.PAGE_SIZE])
    start = max(start, 0)
    nxt = start + itemlist.PAGE_SIZE if start + itemlist.PAGE_SIZE < len(found) else None
    return Reply(found[start:start + itemlist.PAGE_SIZE], total=len(found), next=nxt)


HANDLERS: dict[str, Handler] = {
    "user.current": user_current,
    "profile": profile,
    "user.get": user_get,
}
