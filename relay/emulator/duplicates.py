"""``crm.duplicate.findbycomm`` — ``api-reference/crm/duplicates/crm-duplicate-find-by-comm.md``.

Params ``type`` (``EMAIL``|``PHONE``), ``values`` (at most 20 are looked at), optional
``entity_type`` (``LEAD``|``CONTACT``|``COMPANY``; none = all).  Result
``{"CONTACT": [ids], "COMPANY": [ids]}`` with integer ids and only the types that matched; an
empty result is the empty PHP array ``[]``; per value at most 20 matches, types searched in the
order lead, contact, company, so 20+ hits of one type hide the later types.  Behaviour and error
texts follow Bitrix's ``CCrmDuplicateRestProxy`` (crm module ``restservice.php``: empty error
code, non-string values skipped).  The emulator has no leads, so ``LEAD`` never matches.

Comparison (a choice — Bitrix's own normaliser is not documented): phones by digits only with
an extension (``ext``, ``доб``, ``x``, ``#``, ``;``, ``,`` and what follows) cut off, so
``+7 (900) 123-45-67`` equals ``79001234567`` but not ``89001234567``; e-mails trimmed and
case-insensitive.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from relay.emulator.core import EmuError, Reply, param
from relay.emulator.multifields import normalize_email, normalize_phone
from relay.emulator.state import PortalState
from relay.emulator.values import php_str

Handler = Callable[[PortalState, Mapping[str, Any]], Reply]
_LIMIT = 20


def findbycomm(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """Ids of contacts/companies that have one of ``values`` as a phone or e-mail."""
    kind = php_str(param(params, "type")).strip().upper()
    if kind not in ("EMAIL", "PHONE"):
        if not kind:
            raise EmuError(400, "", "Communication type is not defined.")
        raise EmuError(400, "", f"Communication type '{kind}' is not supported in current context.")
    raw = param(params, "values")
    if isinstance(raw, Mapping):
        raw = list(raw.values())
    if not isinstance(raw, list) or not raw:
        raise EmuError(400, "", "Communication values is not defined.")
    wanted_type = php_str(param(params, "entity_type")).strip().upper()
    if wanted_type == "DEAL":
        raise EmuError(400, "", "Deal is not supported in current context.")
    types = [t for t in ("LEAD", "CONTACT", "COMPANY") if wanted_type in ("", t)] or ["LEAD", "CONTACT", "COMPANY"]
    norm = normalize_phone if kind == "PHONE" else normalize_email
    tables = {"LEAD": {}, "CONTACT": state.contacts, "COMPANY": state.companies}
    found: dict[str, list[int]] = {}
    keys: list[str] = []
    for value in raw:
        if not isinstance(value, str) or not value or len(keys) >= _LIMIT:
            continue
        key = norm(value)
        if not key or key in keys:
            continue
        keys.append(key)
        hits = 0
        for entity in types:
            for record_id in sorted(tables[entity]):
                if hits >= _LIMIT:
                    break
                entries = tables[entity][record_id].get(kind) or []
                if any(norm(e["VALUE"]) == key for e in entries):
                    hits += 1
                    ids = found.setdefault(entity, [])
                    if record_id not in ids:
                        ids.append(record_id)
    ordered = {t: sorted(found[t]) for t in ("LEAD", "CONTACT", "COMPANY") if t in found}
    return Reply(ordered or [])


HANDLERS: dict[str, Handler] = {"crm.duplicate.findbycomm": findbycomm}
