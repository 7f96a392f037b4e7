"""One emulated Bitrix24 portal: state behind one lock, REST method dispatch, test helpers.

No HTTP here — :mod:`relay.emulator.server` puts a portal on a socket.  REST entry points are
:meth:`Portal.call` (plain execution) and :meth:`Portal.handle` (full request pipeline from
:mod:`relay.emulator.pipeline`).  The seeding/inspection helpers are not REST requests: they are
neither logged nor rate-limited.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from relay.emulator import (
    appevents,
    catalog,
    clients,
    crm_methods,
    deal_contacts,
    deals,
    duplicates,
    files,
    itemrows,
    items,
    other_methods,
    requisites,
    robots,
    units,
    userfields,
    users,
)
from relay.emulator import rows as product_rows
from relay.emulator.app import AppMixin
from relay.emulator.batch import run_batch
from relay.emulator.config import PortalConfig
from relay.emulator.core import EmuError, Reply, method_not_found
from relay.emulator.faults import FaultBook
from relay.emulator.limits import LeakyBucket, OperatingLedger
from relay.emulator.outgoing import Binding
from relay.emulator.pipeline import PipelineMixin, RequestRecord, normalize_method
from relay.emulator.state import PortalState

METHODS: dict[str, crm_methods.Handler] = {**crm_methods.HANDLERS, **other_methods.HANDLERS}
# user.current/profile/user.get; crm.deal.userfield.add/list/get (fields then in crm.deal.fields)
METHODS.update({**users.HANDLERS, **userfields.HANDLERS})
# companies, contacts, requisites, duplicates, deal contacts (deal add/update gain CONTACT_IDS)
METHODS.update({**clients.HANDLERS, **requisites.HANDLERS, **duplicates.HANDLERS, **deal_contacts.HANDLERS})
# crm.item.* (deals, smart invoices), crm.item.productrow.*, crm.enum.ownertype, invoice funnels
METHODS.update({**items.HANDLERS, **itemrows.HANDLERS})
# currencies, units of measure, catalog products (what 1C documents land with)
METHODS.update({**units.HANDLERS, **catalog.HANDLERS})
# application context: event.bind/unbind/get, event.offline.*, bizproc.robot.*, bizproc.event.send for runs
METHODS.update({**appevents.HANDLERS, **robots.HANDLERS})


class Portal(PipelineMixin, AppMixin):
    """Thread-safe portal state plus the REST methods Bitrix24 offers on it."""

    def __init__(self, config: PortalConfig | None = None) -> None:
        self.config = config or PortalConfig()
        self.state = PortalState(self.config)
        self._lock = threading.RLock()
        self._bucket = LeakyBucket(self.config.rate, self.config.burst)
        self._ledger = OperatingLedger()
        self._faults = FaultBook()
        self._log: list[RequestRecord] = []
        self._interrupt = threading.Event()
        self._bindings: list[Binding] = []
        self._senders: list[threading.Thread] = []
        self._deliveries: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.config.domain} member_id={self.config.member_id}>"

    # -- REST execution -------------------------------------------------------------------------

    def invoke(self, method: str, params: dict[str, Any]) -> Reply:
        """Run one REST method (``batch`` included) and return its :class:`Reply`; raises :class:`EmuError`."""
        method = normalize_method(method)
        with self._lock, self._method_scope():  # who calls; route the changes to applications after
            if method == "batch":
                return Reply(run_batch(params, self._invoke_command, self._faults.take_command, self.state.tz))
            handler = METHODS.get(method)
            if handler is None:
                raise method_not_found()
            return handler(self.state, params)

    def _invoke_command(self, method: str, params: dict[str, Any]) -> Reply:
        limit = self.config.operating_limit
        if limit is not None and self._ledger.operating(method) >= limit:
            raise EmuError(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")
        handler = METHODS.get(method)
        if handler is None:
            raise method_not_found()
        return handler(self.state, params)

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Execute a REST method directly (no HTTP, no log, no rate limit); returns ``result``."""
        try:
            return self.invoke(method, dict(params or {})).value
        finally:
            self._fire_changes("rest")

    # -- seeding: what a user does in the portal UI ---------------------------------------------

    def add_deal(self, fields: Mapping[str, Any], rows: list[dict[str, Any]] | None = None) -> int:
        """Create a deal as a portal user would (validated; may set DATE_CREATE etc.); returns its id."""
        with self._lock:
            deal_id = deals.create_deal(self.state, dict(fields), trusted=True)
            deal_contacts.apply_deal_fields(self.state, deal_id, fields)
            if rows:
                try:
                    product_rows.set_rows(self.state, deal_id, rows)
                except EmuError:
                    deals.delete_deal(self.state, deal_id)  # all or nothing
                    self.state.changes.clear()
                    self.state.app.routed = 0
                    raise
        self._fire_changes("user")
        return deal_id

    def update_deal(self, deal_id: int, fields: Mapping[str, Any], *, by_user: int | None = None) -> None:
        """Edit a deal as a user (fires ``ONCRMDEALUPDATE`` to bound handlers)."""
        with self._lock:
            deals.update_deal(self.state, int(deal_id), dict(fields), trusted=True, actor=by_user)
            deal_contacts.apply_deal_fields(self.state, int(deal_id), fields)
        self._fire_changes("user")

    def move_deal(self, deal_id: int, category: int, stage: str | None = None) -> None:
        """Move a deal to another funnel as a user (``ONCRMDEALUPDATE`` does not fire)."""
        with self._lock:
            deals.move_deal(self.state, int(deal_id), int(category), stage)
        self._fire_changes("user")

    def delete_deal(self, deal_id: int) -> None:
        """Delete a deal as a user (fires ``ONCRMDEALDELETE`` to bound handlers)."""
        with self._lock:
            deals.delete_deal(self.state, int(deal_id))
        self._fire_changes("user")

    def set_rows(self, deal_id: int, rows: list[dict[str, Any]]) -> None:
        """Replace a deal's product rows (same rules as ``crm.deal.productrows.set``)."""
        with self._lock:
            product_rows.set_rows(self.state, int(deal_id), rows)

    # -- companies and contacts (relay/emulator/clients.py) ------------------------------------

    def add_company(self, fields: Mapping[str, Any]) -> int:
        """Create a company as a user would (same rules as ``crm.company.add``); returns its id."""
        with self._lock:
            return clients.create(self.state, "company", dict(fields))

    def add_contact(self, fields: Mapping[str, Any]) -> int:
        """Create a contact as a user would (same rules as ``crm.contact.add``); returns its id."""
        with self._lock:
            return clients.create(self.state, "contact", dict(fields))

    def add_client_field(self, entity: str, name: str, uf_type: str = "string", *, multiple: bool = False) -> None:
        """Declare a ``UF_CRM_*`` field of ``"company"`` or ``"contact"`` (types ``string``/``integer``...)."""
        if entity not in ("company", "contact") or not name.startswith("UF_CRM_"):
            raise ValueError("entity must be 'company' or 'contact' and name must start with 'UF_CRM_'")
        with self._lock:
            self.state.client_uf[entity][name] = (uf_type, multiple)

    def companies(self) -> list[dict[str, Any]]:
        """Copies of all companies (``crm.company.get`` shape), by id."""
        with self._lock:
            return [clients.visible(self.state.companies[k]) for k in sorted(self.state.companies)]

    def contacts(self) -> list[dict[str, Any]]:
        """Copies of all contacts (``crm.contact.get`` shape), by id."""
        with self._lock:
            return [clients.visible(self.state.contacts[k]) for k in sorted(self.state.contacts)]

    def requisites(self) -> list[dict[str, Any]]:
        """Copies of all requisites (``crm.requisite.get`` shape), by id."""
        with self._lock:
            return [dict(self.state.requisites[k]) for k in sorted(self.state.requisites)]

    def deal_contacts(self, deal_id: int) -> list[dict[str, Any]]:
        """A deal's contact bindings (``crm.deal.contact.items.get`` shape)."""
        with self._lock:
            return deal_contacts.bindings(self.state, int(deal_id))

    # -- crm.item.* records and the catalog (items.py, invoices.py, itemrows.py, catalog.py) ----

    def items(self, entity_type_id: int) -> list[dict[str, Any]]:
        """Copies of all deals (2) or smart invoices (31) in ``crm.item.get`` shape, by id."""
        with self._lock:
            if int(entity_type_id) == items.DEAL:
                return [items.deal_view(self.state, k, False) for k in sorted(self.state.deals)]
            if int(entity_type_id) == items.INVOICE:
                return [copy.deepcopy(self.state.invoices[k]) for k in sorted(self.state.invoices)]
        raise ValueError(f"entityTypeId {entity_type_id} is not emulated (2 and 31 are)")

    def item_rows(self, entity_type_id: int, item_id: int) -> list[dict[str, Any]]:
        """An item's product rows in ``crm.item.productrow.list`` shape, by ``sort`` (empty when unknown)."""
        owner = {items.DEAL: "D", items.INVOICE: "SI"}.get(int(entity_type_id))
        if owner is None:
            raise ValueError(f"entityTypeId {entity_type_id} is not emulated (2 and 31 are)")
        with self._lock:
            return itemrows.owner_rows(self.state, owner, int(item_id))

    def add_product(self, name: str, price: float = 0.0, xml_id: str | None = None, *,
                    currency: str | None = None, measure: int = catalog.DEFAULT_MEASURE) -> int:
        """Add a catalog product (``XML_ID`` defaults to its id, currency to the base one); returns its id."""
        with self._lock:
            return catalog.add_product(self.state, name, price, xml_id, currency=currency, measure=measure)

    def products(self) -> list[dict[str, Any]]:
        """Copies of all catalog products (``crm.product.get`` shape), by id."""
        with self._lock:
            return [dict(self.state.products[k]) for k in sorted(self.state.products)]

    # -- files of deals (relay/emulator/files.py) ------------------------------------------------

    def add_file_to_deal(self, deal_id: int, field: str, name: str, content: bytes) -> int:
        """Attach a file to a deal's ``file`` custom field as a user would; returns the file id."""
        with self._lock:
            return files.add_file(self.state, int(deal_id), field, name, content)

    def files_of(self, deal_id: int, field: str) -> list[tuple[int, str, bytes]]:
        """``(file id, name, content)`` of the files a deal's ``file`` field holds."""
        with self._lock:
            return files.files_of(self.state, int(deal_id), field)

    def download_file(self, params: Mapping[str, Any]) -> tuple[str, bytes]:
        """Serve an ``urlMachine`` link (``crm.controller.item.getFile``); raises :class:`EmuError`."""
        with self._lock:
            return files.download(self.state, params)

    # -- inspection -----------------------------------------------------------------------------

    def deal(self, deal_id: int) -> dict[str, Any] | None:
        """A copy of the stored deal (``crm.deal.get`` shape) or None."""
        with self._lock:
            record = self.state.deals.get(int(deal_id))
            return copy.deepcopy(record) if record is not None else None

    def deals(self) -> list[dict[str, Any]]:
        """Copies of all deals, by id."""
        with self._lock:
            return [copy.deepcopy(self.state.deals[k]) for k in sorted(self.state.deals)]

    def rows(self, deal_id: int) -> list[dict[str, Any]]:
        """Copies of a deal's product rows (empty when the deal is unknown)."""
        with self._lock:
            if int(deal_id) not in self.state.deals:
                return []
            return product_rows.get_rows(self.state, int(deal_id))

    def comments(self, deal_id: int | None = None) -> list[dict[str, Any]]:
        """Timeline comments, optionally only those of one deal."""
        with self._lock:
            return [copy.deepcopy(c) for c in self.state.comments
                    if deal_id is None or c["ENTITY_ID"] == int(deal_id)]

    def notifications(self) -> list[dict[str, Any]]:
        """System notifications sent with ``im.notify.*``."""
        with self._lock:
            return copy.deepcopy(self.state.notifications)

    def event_sends(self) -> list[dict[str, Any]]:
        """``bizproc.event.send`` calls received."""
        with self._lock:
            return copy.deepcopy(self.state.event_sends)

    def rate_level(self) -> float:
        """Current leaky-bucket counter (0 = idle)."""
        with self._lock:
            return self._bucket.level

    def reset(self) -> None:
        """Forget all data, faults, bindings, event tokens, installed applications (their tokens, robots,
        offline queue) and the request log (config stays)."""
        with self._lock:
            base_url, self.state = self.state.base_url, PortalState(self.config)
            self.state.base_url = base_url  # where the server listens (files.py urlMachine)
            self._faults.clear()
            self._log.clear()
            self._bucket.reset()
            self._ledger = OperatingLedger()
            self._bindings.clear()
            self._deliveries.clear()

    def close(self) -> None:
        """Abort pending slow replies (``timeout`` faults) and wait briefly for event senders."""
        self._interrupt.set()
        self.wait_deliveries(timeout=2.0)

    def reopen(self) -> None:
        """Allow ``timeout`` faults to sleep again after :meth:`close`."""
        self._interrupt.clear()
