"""Configuration of one emulated portal, plus the default source/target pair.

Stage ids: funnel 0 uses bare ids (``NEW``), funnel N uses ``C<N>:<STATUS>`` —
``api-reference/crm/status/crm-status-list.md``, ``api-reference/crm/deals/crm-deal-get.md``.
The inbound webhook secret and ``member_id`` identify the portal —
``local-integrations/local-webhooks.md``, ``api-reference/events/index.md``.

What a mapping tool reads besides ids: user ``EMAIL``/``ACTIVE`` (``api-reference/user/user-get.md``),
custom-field labels and ``isRequired`` (``api-reference/crm/deals/crm-deal-fields.md``,
``api-reference/crm/data-types.md``), stage ``NAME`` (``api-reference/crm/status/crm-status-list.md``),
product ``XML_ID`` (``api-reference/crm/outdated/products/crm-product-list.md``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from relay.emulator.schema import STANDARD

DEFAULT_STAGES: tuple[str, ...] = (
    "NEW", "PREPARATION", "PREPAYMENT_INVOICE", "EXECUTING", "FINAL_INVOICE", "WON", "LOSE",
)
DEFAULT_CURRENCIES: tuple[str, ...] = ("RUB", "USD", "EUR", "KZT", "BYN", "UAH")
_ALNUM = string.ascii_lowercase + string.digits
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def random_token(length: int = 32) -> str:
    """A Bitrix-looking token of lower-case letters and digits."""
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def _derived(kind: str, domain: str, length: int) -> str:
    digest = hashlib.sha256(f"{kind}:{domain}".encode()).hexdigest()
    return digest[:length]


def _int_keys(mapping: Mapping[Any, Any]) -> dict[int, Any]:
    return {int(k): v for k, v in mapping.items()}


@dataclass
class PortalConfig:
    """Everything that makes one emulated portal different from another."""

    domain: str = "portal.bitrix24.test"
    member_id: str = field(default_factory=lambda: secrets.token_hex(16))
    user_id: int = 1
    secret: str = field(default_factory=lambda: random_token(16))
    rate: float = 2.0
    burst: int = 50
    enforce_rate: bool = True
    categories: dict[int, list[str]] = field(default_factory=lambda: {0: list(DEFAULT_STAGES)})
    category_names: dict[int, str] = field(default_factory=dict)
    uf_fields: dict[str, str] = field(default_factory=dict)
    uf_multiple: list[str] = field(default_factory=list)
    enum_items: dict[str, Any] = field(default_factory=dict)
    products: dict[int, str] = field(default_factory=dict)
    users: dict[int, str] = field(default_factory=lambda: {1: "Admin"})
    #: ``EMAIL`` of ``user.get`` by user id; a user not listed has ``user<id>@<domain>``
    user_emails: dict[int, str] = field(default_factory=dict)
    #: users with ``ACTIVE`` false (dismissed); each must be in ``users``
    inactive_users: list[int] = field(default_factory=list)
    #: label of a custom deal field (``listLabel``/``formLabel``/``filterLabel``); default: its code
    field_labels: dict[str, str] = field(default_factory=dict)
    #: deal fields (standard or custom) described ``isRequired`` and refused empty by ``crm.deal.add``
    required_fields: list[str] = field(default_factory=list)
    #: ``NAME`` of a stage id in ``crm.status.list``; default: from the status (``C1:NEW`` -> ``New``)
    stage_names: dict[str, str] = field(default_factory=dict)
    #: ``XML_ID`` of a configured product; default: the product id
    product_xml_ids: dict[int, str] = field(default_factory=dict)
    currency: str = "RUB"
    currencies: tuple[str, ...] = DEFAULT_CURRENCIES
    timezone: str = "+03:00"
    first_deal_id: int = 1
    application_token: str = field(default_factory=random_token)
    operating_limit: float | None = None
    #: seconds an OAuth access token of an installed application lives (Bitrix24: one hour —
    #: ``settings/oauth/index.md``); tests set it short
    token_lifetime: float = 3600.0

    def __post_init__(self) -> None:
        self.categories = {k: list(v) for k, v in _int_keys(self.categories).items()}
        self.category_names = {k: str(v) for k, v in _int_keys(self.category_names).items()}
        self.products = {k: str(v) for k, v in _int_keys(self.products).items()}
        self.users = {k: str(v) for k, v in _int_keys(self.users).items()}
        self.user_emails = {k: str(v) for k, v in _int_keys(self.user_emails).items()}
        self.inactive_users = [int(u) for u in self.inactive_users]
        self.field_labels = {str(k): str(v) for k, v in self.field_labels.items()}
        self.required_fields = [str(f) for f in self.required_fields]
        self.stage_names = {str(k): str(v) for k, v in self.stage_names.items()}
        self.product_xml_ids = {k: str(v) for k, v in _int_keys(self.product_xml_ids).items()}
        self.currencies = tuple(dict.fromkeys((*self.currencies, self.currency)))
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` when the configuration cannot describe a real portal."""
        if not _HEX32.match(self.member_id):
            raise ValueError(f"member_id must be 32 lower-case hex digits, got {self.member_id!r}")
        if not self.categories:
            raise ValueError("a portal needs at least one deal category")
        for cat, stages in self.categories.items():
            if not stages:
                raise ValueError(f"category {cat} has no stages")
            for stage in stages:
                if cat > 0 and not stage.startswith(f"C{cat}:"):
                    raise ValueError(f"stage {stage!r} of category {cat} must be written 'C{cat}:<STATUS>'")
                if cat == 0 and ":" in stage:
                    raise ValueError(f"stage {stage!r} of category 0 must be a bare status id")
        for name in (*self.uf_fields, *self.enum_items, *self.uf_multiple):
            if not name.startswith("UF_CRM_"):
                raise ValueError(f"custom field {name!r} must start with 'UF_CRM_'")
        if self.user_id not in self.users:
            raise ValueError(f"webhook user {self.user_id} is not in users")
        self._validate_facts()
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        if self.token_lifetime <= 0:
            raise ValueError("token_lifetime must be > 0 seconds")

    def _validate_facts(self) -> None:
        """The keys that describe users, labels, required fields, stage names and product codes."""
        for user in (*self.user_emails, *self.inactive_users):
            if user not in self.users:
                raise ValueError(f"user {user} of user_emails/inactive_users is not in users")
        for user, email in self.user_emails.items():
            if "@" not in email.strip("@"):
                raise ValueError(f"e-mail {email!r} of user {user} is not an address")
        if self.user_id in self.inactive_users:
            raise ValueError(f"webhook user {self.user_id} cannot be inactive")
        for name in self.field_labels:
            if name not in self.uf_fields:
                raise ValueError(f"field_labels names {name!r}, which is not a custom UF_CRM_* field in uf_fields")
        for name in self.required_fields:
            spec = STANDARD.get(name)
            if name not in self.uf_fields and (spec is None or spec.read_only or spec.hidden):
                raise ValueError(f"required field {name!r} is neither a writable deal field nor in uf_fields")
        stages = {stage for stages in self.categories.values() for stage in stages}
        for stage in self.stage_names:
            if stage not in stages:
                raise ValueError(f"stage_names names {stage!r}, which is not a stage of any category")
        for product, xml_id in self.product_xml_ids.items():
            if product not in self.products or not xml_id.strip():
                raise ValueError(f"product_xml_ids: product {product} is not in products or its XML_ID is empty")

    def enum_map(self, name: str) -> dict[str, str]:
        """Items of an enumeration field as ``{item_id: VALUE}`` (ids as strings)."""
        items = self.enum_items.get(name)
        if items is None:
            return {}
        if isinstance(items, Mapping):
            return {str(k): str(v) for k, v in items.items()}
        return {str(k): f"Item {k}" for k in items}

    def default_category(self) -> int:
        """Funnel 0 when configured, else the lowest configured category id."""
        return 0 if 0 in self.categories else min(self.categories)

    def redacted(self) -> dict[str, Any]:
        """The configuration as plain data, without the webhook secret."""
        data = dataclasses.asdict(self)
        data["secret"] = "***"
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: PortalConfig | None = None) -> PortalConfig:
        """Build from JSON/YAML data; keys not given keep ``base``'s values (or the defaults)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown portal config keys: {', '.join(unknown)}")
        values = dict(data)
        if "currencies" in values:
            values["currencies"] = tuple(values["currencies"])
        if base is None:
            return cls(**values)
        return dataclasses.replace(base, **values, **_carried(values, base))


def _carried(values: Mapping[str, Any], base: PortalConfig) -> dict[str, Any]:
    """``base``'s per-user/field/stage/product keys not overridden, minus what ``values`` removes."""
    users = set(_int_keys(values.get("users", base.users)))
    fields = set(values.get("uf_fields", base.uf_fields))
    stages = {s for stages in values.get("categories", base.categories).values() for s in stages}
    products = set(_int_keys(values.get("products", base.products)))
    kept = {
        "user_emails": {k: v for k, v in base.user_emails.items() if k in users},
        "inactive_users": [u for u in base.inactive_users if u in users],
        "field_labels": {k: v for k, v in base.field_labels.items() if k in fields},
        "required_fields": [f for f in base.required_fields if f in fields or f in STANDARD],
        "stage_names": {k: v for k, v in base.stage_names.items() if k in stages},
        "product_xml_ids": {k: v for k, v in base.product_xml_ids.items() if k in products},
    }
    return {k: v for k, v in kept.items() if k not in values}


def default_source_config(**overrides: Any) -> PortalConfig:
    """The partner portal of the default pair (``partner.bitrix24.test``, funnel 1)."""
    domain = str(overrides.get("domain", "partner.bitrix24.test"))
    base = PortalConfig(
        domain=domain,
        member_id=_derived("member", domain, 32),
        secret=_derived("secret", domain, 16),
        application_token=_derived("apptoken", domain, 32),
        categories={0: list(DEFAULT_STAGES),
                    1: ["C1:NEW", "C1:PREPARATION", "C1:EXECUTING", "C1:WON", "C1:LOSE"]},
        category_names={0: "General", 1: "Partners"},
        uf_fields={"UF_CRM_1700000000": "enumeration"},
        field_labels={"UF_CRM_1700000000": "Delivery"},
        enum_items={"UF_CRM_1700000000": {79: "Courier", 80: "Pickup"}},
        products={15: "Router X100", 16: "Installation service"},
        users={1: "Admin", 5: "Ivan Petrov"},
        user_emails={1: "admin@partner.example", 5: "ivan.petrov@partner.example"},
        first_deal_id=7401,
    )
    return PortalConfig.from_dict(overrides, base) if overrides else base


def default_target_config(**overrides: Any) -> PortalConfig:
    """The ESB portal of the default pair (``esb.bitrix24.test``, funnel 3)."""
    domain = str(overrides.get("domain", "esb.bitrix24.test"))
    base = PortalConfig(
        domain=domain,
        member_id=_derived("member", domain, 32),
        secret=_derived("secret", domain, 16),
        application_token=_derived("apptoken", domain, 32),
        categories={0: list(DEFAULT_STAGES), 3: ["C3:NEW", "C3:PREPARATION", "C3:WON", "C3:LOSE"]},
        category_names={0: "General", 3: "Partners"},
        uf_fields={
            "UF_CRM_SOURCE_DEAL": "string",
            "UF_CRM_PARTNER_COMPANY": "string",
            "UF_CRM_DELIVERY": "enumeration",
        },
        enum_items={"UF_CRM_DELIVERY": {112: "Courier", 113: "Pickup"}},
        field_labels={"UF_CRM_DELIVERY": "Delivery", "UF_CRM_SOURCE_DEAL": "Source deal",
                      "UF_CRM_PARTNER_COMPANY": "Partner company"},
        products={301: "Router X100"},
        # the partner's manager (source user 5) has an ESB account under his own e-mail
        users={1: "Admin", 17: "Maria Sidorova", 18: "Ivan Petrov"},
        user_emails={1: "admin@esb.example", 17: "maria.sidorova@esb.example", 18: "ivan.petrov@partner.example"},
        first_deal_id=501,
    )
    return PortalConfig.from_dict(overrides, base) if overrides else base
