"""Bitrix24 multi-fields (``PHONE``, ``EMAIL``, ``WEB``, ``IM``) of companies and contacts.

Shape ``{ID, VALUE_TYPE, VALUE, TYPE_ID}`` with string ids and the value types per field —
``api-reference/crm/data-types.md#crm_multifield``.  Writing: on add every entry with a
non-empty ``VALUE`` is stored; on update an entry *without* ``ID`` is added, an entry with
``ID`` and a ``VALUE`` changes that entry, an entry with ``ID`` and an empty/missing ``VALUE``
or ``DELETE: "Y"`` deletes it; entries not sent stay — ``api-reference/crm/contacts/crm-contact-update.md``
("Working with Multiple Fields"), protocol doc §10.  ``crm.*.get`` returns a multi-field only
when it has entries (``crm-contact-get.md`` example); ``HAS_PHONE``/``HAS_EMAIL``/``HAS_IMOL``
are derived (``crm-contact-fields.md``, read-only).

UNVERIFIED: the default ``VALUE_TYPE`` when none is sent (``WORK``; ``OTHER`` for ``IM``) and
the exact e-mail check (a real portal answers ``ERROR_CORE`` "The field `Work e-mail` contains an
invalid address" — ``crm-contact-add.md``; the emulator checks ``x@y.z``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from relay.emulator.core import EmuError
from relay.emulator.state import PortalState
from relay.emulator.values import php_str, strict_id

#: multi-field name -> allowed ``VALUE_TYPE`` values (``data-types.md#crm_multifield``)
KINDS: dict[str, tuple[str, ...]] = {
    "PHONE": ("WORK", "MOBILE", "FAX", "HOME", "PAGER", "MAILING", "OTHER"),
    "EMAIL": ("WORK", "HOME", "MAILING", "OTHER"),
    "WEB": ("WORK", "HOME", "VK", "LIVEJOURNAL", "TWITTER", "OTHER"),
    "IM": ("TELEGRAM", "VK", "SKYPE", "VIBER", "BITRIX24", "OPENLINE", "IMOL", "ICQ", "MSN",
           "JABBER", "OTHER"),
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_EMAIL_LABEL = {"WORK": "Work e-mail", "HOME": "Private e-mail", "MAILING": "Newsletter e-mail",
                "OTHER": "Other e-mail"}
# an extension starts at "ext", "доб", "x", "#", ";" or "," — digits after it are ignored
_EXTENSION = re.compile(r"(ext\.?|доб\.?|x|#|;|,).*$", re.IGNORECASE)


def normalize_phone(value: Any) -> str:
    """Digits only, extension cut off: ``"+7 (900) 123-45-67 ext. 12"`` -> ``"79001234567"``."""
    return re.sub(r"\D", "", _EXTENSION.sub("", php_str(value)))


def normalize_email(value: Any) -> str:
    """Trimmed and case-folded e-mail address."""
    return php_str(value).strip().casefold()


def _entries(value: Any) -> list[Mapping[str, Any]]:
    """The entries of an incoming multi-field (list, or PHP-style ``{"n0": {...}}`` object)."""
    items = list(value.values()) if isinstance(value, Mapping) else value if isinstance(value, list) else []
    return [item for item in items if isinstance(item, Mapping)]


def _value_type(kind: str, raw: Any, current: str | None = None) -> str:
    wanted = php_str(raw).strip().upper()
    if wanted in KINDS[kind]:
        return wanted
    return current or ("OTHER" if kind == "IM" else "WORK")


def _check(kind: str, value: str, value_type: str) -> None:
    if kind == "EMAIL" and not _EMAIL.match(value):
        label = _EMAIL_LABEL.get(value_type, "E-mail")
        raise EmuError(400, "ERROR_CORE", f"The field `{label}` contains an invalid address")


def _new_entry(state: PortalState, kind: str, item: Mapping[str, Any]) -> dict[str, Any] | None:
    value = php_str(item.get("VALUE")).strip()
    if not value:
        return None
    value_type = _value_type(kind, item.get("VALUE_TYPE"))
    _check(kind, value, value_type)
    return {"ID": str(state.next_id("multifield")), "VALUE_TYPE": value_type, "VALUE": value, "TYPE_ID": kind}


def apply(state: PortalState, record: dict[str, Any], fields: Mapping[str, Any], *, update: bool) -> None:
    """Write the multi-fields present in ``fields`` into ``record`` (add or update semantics)."""
    for kind in KINDS:
        if kind not in fields:
            continue
        current: list[dict[str, Any]] = [dict(e) for e in record.get(kind) or []]
        for item in _entries(fields[kind]):
            entry_id = strict_id(item.get("ID")) if update else None
            if entry_id is None:
                added = _new_entry(state, kind, item)
                if added is not None:
                    current.append(added)
                continue
            index = next((i for i, e in enumerate(current) if e["ID"] == str(entry_id)), None)
            if index is None:
                continue  # an id of another record: ignored
            value = php_str(item.get("VALUE")).strip()
            if php_str(item.get("DELETE")).upper() == "Y" or not value:
                del current[index]
                continue
            old = current[index]
            value_type = _value_type(kind, item.get("VALUE_TYPE"), old["VALUE_TYPE"])
            _check(kind, value, value_type)
            current[index] = {**old, "VALUE": value, "VALUE_TYPE": value_type}
        record[kind] = current
    derive_flags(record)


def derive_flags(record: dict[str, Any]) -> None:
    """``HAS_PHONE``, ``HAS_EMAIL``, ``HAS_IMOL`` (an ``IM`` entry of type ``IMOL``)."""
    record["HAS_PHONE"] = "Y" if record.get("PHONE") else "N"
    record["HAS_EMAIL"] = "Y" if record.get("EMAIL") else "N"
    record["HAS_IMOL"] = "Y" if any(e["VALUE_TYPE"] == "IMOL" for e in record.get("IM") or []) else "N"


def values(record: Mapping[str, Any], kind: str) -> list[str]:
    """The ``VALUE`` strings of one multi-field (what list filters compare against)."""
    return [e["VALUE"] for e in record.get(kind) or []]
