"""Pure: Bitrix24 multi-fields (``PHONE``, ``EMAIL``, ``WEB``, ``IM``) — the update that leaves exactly
the source's values on the target.

A multi-field is a list of ``{ID, VALUE, VALUE_TYPE, TYPE_ID}``.  On update Bitrix24 *adds* an entry
sent without ``ID``, changes the entry whose ``ID`` is sent with a new ``VALUE``, and deletes the entry
whose ``ID`` is sent with an empty ``VALUE`` (``bitrix24-protocol.md`` §10; dev.1c-bitrix.ru
``rest_help/crm/contacts/crm_contact_update.php``).  So re-sending the source's list as it is would
duplicate every phone.  :func:`plan_update` compares the lists and returns only the changes:
values already on the target are left alone, changed ones are rewritten in place (reusing the ``ID``
of a target entry that is no longer wanted), new ones are added, and the rest are deleted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

MULTI_FIELDS = ("PHONE", "EMAIL", "WEB", "IM")
_DIGITS = re.compile(r"\D+")


def normalize(field: str, value: Any) -> str:
    """The comparable form of one value: phone digits (a leading 8 of an 11-digit number as 7),
    lower-case e-mail and web addresses, trimmed text otherwise."""
    text = str(value or "").strip()
    if field == "PHONE":
        digits = _DIGITS.sub("", text)
        return "7" + digits[1:] if len(digits) == 11 and digits.startswith("8") else digits
    if field in ("EMAIL", "WEB"):
        return text.lower()
    return text


def _entries(values: Any) -> list[Mapping[str, Any]]:
    if not isinstance(values, list):
        return []
    return [v for v in values if isinstance(v, Mapping) and str(v.get("VALUE") or "").strip()]


def wanted(field: str, source: Any) -> list[dict[str, str]]:
    """The source's entries, each once: ``{VALUE, VALUE_TYPE}`` (what a create sends)."""
    out: dict[str, dict[str, str]] = {}
    for entry in _entries(source):
        key = normalize(field, entry.get("VALUE"))
        if key and key not in out:
            out[key] = {"VALUE": str(entry.get("VALUE")).strip(),
                        "VALUE_TYPE": str(entry.get("VALUE_TYPE") or "WORK")}
    return list(out.values())


def plan_update(field: str, source: Any, target: Any) -> list[dict[str, str]]:
    """The entries to send in ``crm.*.update`` so that the target holds exactly the source's values
    of ``field``; empty when nothing changes."""
    want = {normalize(field, e["VALUE"]): e for e in wanted(field, source)}
    have: list[tuple[str, str, Mapping[str, Any]]] = []  # (key, ID, entry)
    seen: set[str] = set()
    spare: list[str] = []  # IDs of target entries to reuse or delete
    for entry in _entries(target):
        key, entry_id = normalize(field, entry.get("VALUE")), str(entry.get("ID") or "")
        if key in want and key not in seen:
            seen.add(key)
            have.append((key, entry_id, entry))
        elif entry_id:
            spare.append(entry_id)  # a value gone from the source, or a duplicate on the target
    changes: list[dict[str, str]] = []
    for key, entry_id, entry in have:
        value_type = want[key]["VALUE_TYPE"]
        if entry_id and str(entry.get("VALUE_TYPE") or "") != value_type:
            changes.append({"ID": entry_id, "VALUE": want[key]["VALUE"], "VALUE_TYPE": value_type})
    for key, entry in want.items():
        if key in seen:
            continue
        if spare:  # change a no longer wanted entry in place
            changes.append({"ID": spare.pop(0), **entry})
        else:
            changes.append(dict(entry))
    changes += [{"ID": entry_id, "VALUE": ""} for entry_id in spare]
    return changes


def plan_all(source: Mapping[str, Any], target: Mapping[str, Any],
             fields: Sequence[str] = MULTI_FIELDS) -> dict[str, list[dict[str, str]]]:
    """:func:`plan_update` for every multi-field that changes."""
    out = {}
    for field in fields:
        changes = plan_update(field, source.get(field), target.get(field))
        if changes:
            out[field] = changes
    return out
