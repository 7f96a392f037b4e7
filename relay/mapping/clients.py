"""Pure: a source company or contact translated by its mapping section (``company:`` / ``contacts:``).

The same rules as deal fields (copy, template, ``const``, ``from``/``map``/``default``, tables,
``create_only``; emptied values are cleared on update).  Multi-fields (``PHONE``, ``EMAIL``, ``WEB``,
``IM``) are not written as they are: a create sends each source value once, an update sends only the
changes against the target's entries (:mod:`relay.mapping.multifields`), so the target ends up with
exactly the source's values.  The fingerprint covers the normalized values, so a record whose mapped
content did not change is not written at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from relay.mapping.deal import ClientSpec, FieldSpec, map_fields
from relay.mapping.multifields import MULTI_FIELDS, normalize, plan_update, wanted

#: the entity types a deal's clients have: (entity, REST prefix, ``ENTITY_TYPE_ID``, findbycomm type)
COMPANY, CONTACT = "company", "contact"
ENTITY_TYPE_IDS = {COMPANY: 4, CONTACT: 3}


@dataclass(frozen=True)
class TargetRecord:
    """A translated company or contact: ``fields`` for ``crm.*.add`` (multi-fields as plain value lists),
    ``update_fields`` for ``crm.*.update`` without multi-fields, ``multi`` the wanted multi-field values,
    ``requisite`` the requisite fields to copy on create (empty: none)."""

    fields: dict[str, Any]
    update_fields: dict[str, Any]
    multi: dict[str, list[dict[str, str]]]
    requisite: dict[str, Any] = field(default_factory=dict)

    def update(self, current: Mapping[str, Any]) -> dict[str, Any]:
        """``crm.*.update`` fields against the target's ``current`` record: plain fields, plus for each
        multi-field only the entries that change (in place, added, removed)."""
        out = dict(self.update_fields)
        for name, values in self.multi.items():
            changes = plan_update(name, values, current.get(name))
            if changes:
                out[name] = changes
        return out


class Sections(Protocol):
    """What relays clients: a deal mapping (``company``/``contacts``) or a 1C mapping (``clients``)."""

    @property
    def company(self) -> ClientSpec | None: ...

    @property
    def contacts(self) -> ClientSpec | None: ...

    def table_for(self, fs: FieldSpec) -> Mapping[str, str] | None: ...


def section(spec: Sections, entity: str) -> ClientSpec | None:
    """The mapping section of an entity type (``company`` or ``contacts``)."""
    return spec.company if entity == COMPANY else spec.contacts


def transform(record: Mapping[str, Any], spec: Sections, entity: str, source: Mapping[str, str],
              requisite: Mapping[str, Any] | None = None) -> TargetRecord:
    """Translate one source company or contact (``MappingError`` if a value has no mapping)."""
    sect = section(spec, entity)
    assert sect is not None
    fields, update = map_fields(record, sect.fields, sect.create_only, spec, source)
    multi: dict[str, list[dict[str, str]]] = {}
    for name in [n for n in list(fields) + list(update) if n in MULTI_FIELDS]:
        value = fields.pop(name, None)
        update.pop(name, None)
        if name not in multi:
            multi[name] = wanted(name, value if isinstance(value, list) else
                                 [{"VALUE": v, "VALUE_TYPE": "WORK"} for v in ([value] if value else [])])
    for name, values in multi.items():
        if values:
            fields[name] = [dict(v) for v in values]
    copied: dict[str, Any] = {}
    if sect.requisite is not None and requisite:
        copied = {k: requisite[k] for k in sect.requisite.fields if requisite.get(k) not in (None, "")}
    return TargetRecord(fields=fields, update_fields=update, multi=multi, requisite=copied)


def fingerprint(target: TargetRecord) -> str:
    """Stable sha256 hex of what an update writes (multi-fields normalized, order-free)."""
    multi = {name: sorted(normalize(name, v["VALUE"]) + "|" + v["VALUE_TYPE"] for v in values)
             for name, values in target.multi.items()}
    text = json.dumps({"fields": target.update_fields, "multi": multi}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def match_values(target: TargetRecord | None, rule: str, requisite: Mapping[str, Any] | None) -> list[str]:
    """The values a match rule looks for on the target: the phones, e-mails or title the relay would
    write (so rules work the same whatever the source calls its fields), the source's requisite value
    (compare phones and e-mails with :func:`~relay.mapping.multifields.normalize`)."""
    if rule in ("phone", "email"):
        return [v["VALUE"] for v in (target.multi.get(rule.upper(), []) if target else [])]
    if rule == "title":
        title = str((target.fields.get("TITLE") if target else "") or "").strip()
        return [title] if title else []
    if rule.startswith("requisite:"):
        value = str((requisite or {}).get(rule.split(":", 1)[1]) or "").strip()
        return [value] if value else []
    return []
