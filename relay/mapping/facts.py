"""Pure: what one portal holds that a mapping may name — fields, funnels and stages, users, products.

``relay mapping check`` and ``relay mapping init`` compare two portals through these facts
(:mod:`relay.sync.facts` reads them).  Field descriptions follow ``crm.*.fields``: type,
``isReadOnly``, ``isImmutable``, ``isRequired``, ``isMultiple``, ``items`` of ``enumeration`` fields;
custom fields carry their code in ``title`` and the label in ``listLabel`` / ``formLabel``
(``api-reference/crm/deals/crm-deal-fields.md``, ``api-reference/crm/data-types.md``).  Users follow
``user.get`` (``api-reference/user/user-get.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldFacts:
    """One CRM field as ``crm.*.fields`` describes it."""

    name: str
    type: str
    label: str
    read_only: bool = False
    immutable: bool = False
    required: bool = False
    multiple: bool = False
    items: Mapping[str, str] = field(default_factory=dict)  # enumeration: item id -> text


@dataclass(frozen=True)
class UserFacts:
    """One portal user."""

    id: str
    name: str
    email: str
    active: bool


@dataclass(frozen=True)
class StageFacts:
    """One deal stage and the funnel it belongs to."""

    id: str
    category: str
    name: str


@dataclass
class PortalFacts:
    """What one portal holds that a mapping may name; ``unread`` lists what could not be read."""

    domain: str = ""
    deal_fields: dict[str, FieldFacts] = field(default_factory=dict)
    company_fields: dict[str, FieldFacts] = field(default_factory=dict)
    contact_fields: dict[str, FieldFacts] = field(default_factory=dict)
    funnels: dict[str, str] = field(default_factory=dict)  # category id -> name
    stages: dict[str, StageFacts] = field(default_factory=dict)
    users: dict[str, UserFacts] = field(default_factory=dict)
    current_user: str = ""
    products: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (name, XML_ID)
    presets: dict[str, str] = field(default_factory=dict)  # requisite preset id -> name
    unread: dict[str, str] = field(default_factory=dict)  # what -> why

    def stages_of(self, category: str) -> dict[str, StageFacts]:
        """The stages of one funnel."""
        return {k: s for k, s in self.stages.items() if s.category == category}


def _flag(value: Any) -> bool:
    return value is True or str(value).upper() in ("Y", "TRUE", "1")


def parse_fields(raw: Any) -> dict[str, FieldFacts]:
    """``crm.*.fields`` result -> facts (pure)."""
    out: dict[str, FieldFacts] = {}
    if not isinstance(raw, Mapping):
        return out
    for name, desc in raw.items():
        if not isinstance(desc, Mapping):
            continue
        label = next((str(desc[k]) for k in ("listLabel", "formLabel", "filterLabel", "title")
                      if desc.get(k) not in (None, "")), str(name))
        items = {str(i.get("ID")): str(i.get("VALUE", "")) for i in desc.get("items") or []
                 if isinstance(i, Mapping)}
        out[str(name)] = FieldFacts(name=str(name), type=str(desc.get("type", "")), label=label,
                                    read_only=_flag(desc.get("isReadOnly")), immutable=_flag(desc.get("isImmutable")),
                                    required=_flag(desc.get("isRequired")), multiple=_flag(desc.get("isMultiple")),
                                    items=items)
    return out


def parse_user(raw: Mapping[str, Any]) -> UserFacts:
    """One ``user.get`` row -> facts (pure)."""
    name = " ".join(str(raw.get(k) or "") for k in ("NAME", "LAST_NAME")).strip()
    return UserFacts(id=str(raw.get("ID", "")), name=name or str(raw.get("EMAIL") or ""),
                     email=str(raw.get("EMAIL") or "").strip().lower(), active=_flag(raw.get("ACTIVE", True)))


