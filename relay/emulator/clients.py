"""``crm.company.*`` and ``crm.contact.*``: add, get, update, list, delete, fields.

Docs: ``api-reference/crm/companies/crm-company-{add,get,update,list,delete,fields}.md`` and
``api-reference/crm/contacts/crm-contact-{add,get,update,list,delete,fields}.md``.
Output typing as for deals (strings, ``Y``/``N``, ISO dates, ``null`` empty links).
Partial update, unknown fields silently ignored (``crm-contact-update.md``).
Multi-fields: :mod:`relay.emulator.multifields`.  ``ORIGINATOR_ID``/``ORIGIN_ID``/``ORIGIN_VERSION``
are plain writable strings.  ``UF_CRM_*`` fields must be declared first
(:meth:`relay.emulator.portal.Portal.add_client_field`); undeclared ones are ignored.

Contacts hold company bindings: ``COMPANY_IDS`` (all, written) and ``COMPANY_ID`` (the primary,
returned).  UNVERIFIED: a write of ``COMPANY_ID`` alone replaces the bindings with that one
company; ``crm.contact.get`` returns no ``COMPANY_IDS`` (not in the doc example).

Errors (HTTP 400): get ``""``/``Not found``; update ``""``/``Company is not found`` or
``Contact is not found``; delete company ``""``/``Company is not found``, delete contact
``ERROR_CORE``/``Element not found``; bad id ``""``/``ID is not defined or invalid.``
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from relay.emulator import deal_contacts, multifields
from relay.emulator.client_schema import CATALOGUES, describe
from relay.emulator.core import EmuError, Reply, param, validation
from relay.emulator.reclist import Catalogue, list_records
from relay.emulator.state import PortalState
from relay.emulator.values import floatval, intval, iso, parse_datetime, php_str, strict_id

Handler = Callable[[PortalState, Mapping[str, Any]], Reply]
_YES = {"Y", "y", "1", "true", "TRUE", "True"}
_DEFAULTS = {
    "company": {"COMPANY_TYPE": "CUSTOMER", "INDUSTRY": "IT", "EMPLOYEES": "EMPLOYEES_1",
                "REVENUE": "0", "IS_MY_COMPANY": "N", "TITLE": ""},
    "contact": {"TYPE_ID": "CLIENT", "SOURCE_ID": "CALL", "EXPORT": "Y", "BIRTHDATE": ""},
}
_NOT_FOUND_ON_UPDATE = {"company": "Company is not found", "contact": "Contact is not found"}


def table(state: PortalState, entity: str) -> dict[int, dict[str, Any]]:
    """The stored companies or contacts."""
    return state.companies if entity == "company" else state.contacts


def record_id(params: Mapping[str, Any]) -> int:
    """The positive ``id`` parameter or the legacy invalid-id error — ``crm-contact-get.md``."""
    value = strict_id(param(params, "id"))
    if value is None:
        raise EmuError(400, "", "ID is not defined or invalid.")
    return value


def _convert(state: PortalState, name: str, kind: str, value: Any) -> Any:
    if kind == "str":
        return None if value is None else "Array" if isinstance(value, (list, dict)) else php_str(value)
    if kind == "int":
        return None if value in (None, "") else str(intval(value))
    if kind == "money":
        return php_str(floatval(value))
    if kind == "yn":
        return "Y" if value is True or php_str(value) in _YES else "N"
    if kind == "date":
        if value in (None, ""):
            return ""
        moment = parse_datetime(value, state.tz)
        if moment is None:
            raise validation(f"Field '{name}' has an invalid date value '{php_str(value)}'")
        return iso(moment.replace(hour=0, minute=0, second=0, microsecond=0))
    if kind == "user":
        if intval(value) not in state.config.users:
            raise validation(f"User with ID '{php_str(value)}' is not found")
        return str(intval(value))
    if kind == "currency":
        code = php_str(value).upper()
        if code not in state.config.currencies:
            raise validation(f"Currency '{php_str(value)}' is not found")
        return code
    raise AssertionError(f"unhandled kind {kind}")


def _uf_value(uf_type: str, multiple: bool, value: Any) -> Any:
    items = value if isinstance(value, list) else [] if value in (None, "") else [value]
    converted = [php_str(intval(v)) if uf_type == "integer" else php_str(v) for v in items if v not in (None, "")]
    if multiple:
        return converted
    return converted[0] if converted else None


def _clean(state: PortalState, entity: str, fields: Any) -> dict[str, Any]:
    if fields in (None, "", []):
        return {}
    if not isinstance(fields, Mapping):
        raise validation("Parameter 'fields' must be array.")
    out: dict[str, Any] = {}
    uf = state.client_uf[entity]
    for name, value in fields.items():
        spec = CATALOGUES[entity].get(name)
        if spec is not None and spec[1] != "ro":
            out[name] = _convert(state, name, spec[1], value)
        elif name in uf:
            out[name] = _uf_value(uf[name][0], uf[name][1], value)
    return out


def _ids(value: Any) -> list[int]:
    items = value if isinstance(value, list) else list(value.values()) if isinstance(value, Mapping) else [value]
    return list(dict.fromkeys(i for i in (intval(v) for v in items) if i > 0))


def _bind_companies(state: PortalState, contact: dict[str, Any], fields: Mapping[str, Any]) -> None:
    """Contact -> company bindings from ``COMPANY_IDS`` and/or ``COMPANY_ID`` (module docstring)."""
    if "COMPANY_IDS" not in fields and "COMPANY_ID" not in fields:
        return
    contact_id = int(contact["ID"])
    ids = _ids(fields["COMPANY_IDS"]) if "COMPANY_IDS" in fields else []
    primary = intval(fields.get("COMPANY_ID"))
    if primary > 0:
        ids = [primary, *(i for i in ids if i != primary)]
    state.contact_companies[contact_id] = ids
    contact["COMPANY_ID"] = str(ids[0]) if ids else None


def _bind_contacts(state: PortalState, company_id: int, fields: Mapping[str, Any]) -> None:
    """Company ``CONTACT_ID`` (multiple, write-only): the company's contacts become exactly these."""
    if "CONTACT_ID" not in fields:
        return
    wanted = set(_ids(fields["CONTACT_ID"]))
    for contact_id, record in state.contacts.items():
        bound = state.contact_companies.setdefault(contact_id, [])
        if contact_id in wanted and company_id not in bound:
            bound.append(company_id)
        elif contact_id not in wanted and company_id in bound:
            bound.remove(company_id)
        record["COMPANY_ID"] = str(bound[0]) if bound else None


def create(state: PortalState, entity: str, fields: Any) -> int:
    """Validate and store a new company/contact; returns its id — ``crm-company-add.md``, ``crm-contact-add.md``."""
    clean = _clean(state, entity, fields)
    new_id = state.next_id(entity)
    now = iso(state.now())
    user = str(state.config.user_id)
    record: dict[str, Any] = dict.fromkeys(CATALOGUES[entity])
    record.update(_DEFAULTS[entity])
    record.update({"ID": str(new_id), "ASSIGNED_BY_ID": user, "CREATED_BY_ID": user, "MODIFY_BY_ID": user,
                   "DATE_CREATE": now, "DATE_MODIFY": now, "OPENED": "Y", "LAST_ACTIVITY_TIME": now,
                   "LAST_ACTIVITY_BY": user})
    for name, (_uf_type, multiple) in state.client_uf[entity].items():
        record[name] = [] if multiple else None
    record.update(clean)
    multifields.apply(state, record, fields if isinstance(fields, Mapping) else {}, update=False)
    table(state, entity)[new_id] = record
    if isinstance(fields, Mapping):
        if entity == "contact":
            _bind_companies(state, record, fields)
        else:
            _bind_contacts(state, new_id, fields)
    return new_id


def update(state: PortalState, entity: str, record_key: int, fields: Any) -> None:
    """Change only the given fields; multi-fields by entry ``ID`` — ``crm-contact-update.md``."""
    old = table(state, entity).get(record_key)
    if old is None:
        raise EmuError(400, "", _NOT_FOUND_ON_UPDATE[entity])
    record = {**copy.deepcopy(old), **_clean(state, entity, fields)}
    multifields.apply(state, record, fields if isinstance(fields, Mapping) else {}, update=True)
    record["DATE_MODIFY"] = iso(state.now())
    record["MODIFY_BY_ID"] = str(state.config.user_id)
    table(state, entity)[record_key] = record
    if isinstance(fields, Mapping):
        if entity == "contact":
            _bind_companies(state, record, fields)
        else:
            _bind_contacts(state, record_key, fields)


def delete(state: PortalState, entity: str, record_key: int) -> None:
    """Remove a company/contact, its requisites and bindings — ``crm-company-delete.md``, ``crm-contact-delete.md``."""
    if record_key not in table(state, entity):
        if entity == "company":
            raise EmuError(400, "", "Company is not found")
        raise EmuError(400, "ERROR_CORE", "Element not found")
    del table(state, entity)[record_key]
    owner_type = "4" if entity == "company" else "3"
    for rq_id in [k for k, r in state.requisites.items()
                  if r["ENTITY_TYPE_ID"] == owner_type and r["ENTITY_ID"] == str(record_key)]:
        del state.requisites[rq_id]
    if entity == "contact":
        state.contact_companies.pop(record_key, None)
        for deal_id, items in state.deal_contacts.items():
            kept = [i for i in items if i["CONTACT_ID"] != record_key]
            if len(kept) != len(items):
                deal_contacts.store(state, deal_id, kept)
        return
    for contact_id, bound in state.contact_companies.items():
        if record_key in bound:
            bound.remove(record_key)
            state.contacts[contact_id]["COMPANY_ID"] = str(bound[0]) if bound else None
    for deal in state.deals.values():
        if deal.get("COMPANY_ID") == str(record_key):
            deal["COMPANY_ID"] = None


def visible(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record as ``crm.*.get`` returns it: multi-fields only when non-empty."""
    out = {k: copy.deepcopy(v) for k, v in record.items() if k not in multifields.KINDS}
    for kind in multifields.KINDS:
        if record.get(kind):
            out[kind] = copy.deepcopy(record[kind])
    return out


def _catalogue(state: PortalState, entity: str) -> Catalogue:
    return Catalogue(standard=tuple(CATALOGUES[entity]),
                     uf={n: m for n, (_t, m) in state.client_uf[entity].items()},
                     multi=tuple(multifields.KINDS),
                     text=frozenset(n for n, spec in CATALOGUES[entity].items() if spec[0] == "string"))


def _handlers(entity: str) -> dict[str, Handler]:
    prefix = f"crm.{entity}."

    def get(state: PortalState, params: Mapping[str, Any]) -> Reply:
        record = table(state, entity).get(record_id(params))
        if record is None:
            raise EmuError(400, "", "Not found")
        return Reply(visible(record))

    def add(state: PortalState, params: Mapping[str, Any]) -> Reply:
        return Reply(create(state, entity, param(params, "fields")))

    def upd(state: PortalState, params: Mapping[str, Any]) -> Reply:
        update(state, entity, record_id(params), param(params, "fields"))
        return Reply(True)

    def dele(state: PortalState, params: Mapping[str, Any]) -> Reply:
        delete(state, entity, record_id(params))
        return Reply(True)

    def lst(state: PortalState, params: Mapping[str, Any]) -> Reply:
        return list_records(_catalogue(state, entity), table(state, entity).values(), params, state.tz)

    def fields(state: PortalState, params: Mapping[str, Any]) -> Reply:
        return Reply(describe(entity, state.client_uf[entity]))

    return {prefix + "get": get, prefix + "add": add, prefix + "update": upd, prefix + "delete": dele,
            prefix + "list": lst, prefix + "fields": fields}


HANDLERS: dict[str, Handler] = {**_handlers("company"), **_handlers("contact")}
