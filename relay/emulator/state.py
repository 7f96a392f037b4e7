"""The mutable data of one portal (deals, rows, comments, ...); no locking, no HTTP.

:class:`relay.emulator.portal.Portal` owns one :class:`PortalState` and guards it with its lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from relay.emulator.appstate import AppState, Caller
from relay.emulator.catalog import product_record
from relay.emulator.config import PortalConfig
from relay.emulator.core import not_found
from relay.emulator.values import parse_tz


@dataclass
class PortalState:
    """Deals and everything hanging off them, plus id counters and pending change events."""

    config: PortalConfig
    tz: timezone = field(init=False)
    deals: dict[int, dict[str, Any]] = field(default_factory=dict)
    rows: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    comments: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    event_sends: list[dict[str, Any]] = field(default_factory=list)
    event_tokens: set[str] = field(default_factory=set)
    #: ``(event code, deal id)`` produced by writes, drained by the portal to fire bound handlers
    changes: list[tuple[str, int]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    # -- crm.item.* smart invoices (entityTypeId 31) and stored files: relay.emulator.items / files --
    #: invoice records in ``crm.item.get`` (camelCase) shape, by id
    invoices: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: product rows of smart invoices (deal rows stay in ``rows``), by invoice id
    invoice_rows: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    #: invoice funnels: category id -> stage ids (``DT31_<category>:<STATUS>``)
    invoice_categories: dict[int, list[str]] = field(
        default_factory=lambda: {2: ["DT31_2:N", "DT31_2:S", "DT31_2:P", "DT31_2:D"]})
    #: uploaded files by file id: ``name``, ``content`` (bytes), ``owner`` (deal id), ``field``
    files: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: ``http://127.0.0.1:<port>`` once served (for ``urlMachine``); empty: ``https://<domain>``
    base_url: str = ""
    # -- companies, contacts, requisites and deal-contact bindings (relay/emulator/clients.py) --
    companies: dict[int, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: contact id -> bound company ids, primary first (``COMPANY_ID`` / ``COMPANY_IDS``)
    contact_companies: dict[int, list[int]] = field(default_factory=dict)
    requisites: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: deal id -> ``[{CONTACT_ID, SORT, ROLE_ID, IS_PRIMARY}]`` (``crm.deal.contact.items.*``)
    deal_contacts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    #: ``"company"``/``"contact"`` -> {``UF_CRM_*`` name: (user type, multiple)}
    client_uf: dict[str, dict[str, tuple[str, bool]]] = field(
        default_factory=lambda: {"company": {}, "contact": {}})
    #: catalog products by id in ``crm.product.get`` shape (relay/emulator/catalog.py); the
    #: configured ``products`` (id -> name) are there from the start, price 0
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: ``crm.deal.userfield.*`` records by ``FIELD_NAME`` (relay/emulator/userfields.py); the fields of
    #: ``config.uf_fields`` get theirs on first read
    deal_userfields: dict[str, dict[str, Any]] = field(default_factory=dict)
    # -- installed applications: OAuth tokens, event bindings, offline queue, robots (appstate.py) --
    app: AppState = field(default_factory=AppState)
    #: who the REST call being executed comes from (set by ``AppMixin`` around each method)
    caller: Caller = field(default_factory=Caller)

    def __post_init__(self) -> None:
        self.tz = parse_tz(self.config.timezone)
        self.caller = Caller(None, self.config.user_id, "")
        self.counters.setdefault("deal", self.config.first_deal_id - 1)
        for product_id, name in self.config.products.items():
            self.products.setdefault(product_id, product_record(
                product_id, name, currency=self.config.currency, user=self.config.user_id,
                xml_id=self.config.product_xml_ids.get(product_id)))
        self.counters.setdefault("product", max(self.config.products, default=0))

    def next_id(self, kind: str) -> int:
        """The next id of ``kind`` (``deal``, ``row``, ``comment``, ``notify``, ...)."""
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return self.counters[kind]

    def now(self) -> datetime:
        """Current time in the portal's timezone, whole seconds (Bitrix stores seconds)."""
        return datetime.now(self.tz).replace(microsecond=0)

    def deal(self, deal_id: int) -> dict[str, Any]:
        """The stored deal or the legacy ``Not found`` error — ``crm-deal-get.md``."""
        record = self.deals.get(deal_id)
        if record is None:
            raise not_found()
        return record

    def stages(self, category: int) -> list[str]:
        """Stage ids of a configured category (empty list when unknown)."""
        return self.config.categories.get(category, [])
