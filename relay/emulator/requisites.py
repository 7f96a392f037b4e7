"""``crm.requisite.add/get/update/delete/list`` and ``crm.requisite.preset.list``.

Requisites hold tax ids of a company (``ENTITY_TYPE_ID`` 4) or contact (3): fields and the
``crm.requisite.get`` output (strings, ``null`` empty values) —
``api-reference/crm/requisites/universal/crm-requisite-{add,get,update,delete,list}.md``.
Find a company by tax id with ``crm.requisite.list`` ``filter{"RQ_INN": …}`` (protocol doc §10);
``=``/``@`` prefixes and ``ENTITY_TYPE_ID`` as in ``crm-requisite-list.md``; tax ids compare as
text, so leading zeros matter (UNVERIFIED, as for any string column).
Errors are HTTP 400 with an empty code: ``ENTITY_TYPE_ID is not defined or invalid.``,
``ENTITY_ID …``, ``PRESET_ID …``, ``Entity not found.``, ``The Requisite with ID '57' is not found``,
``ID is not defined or invalid.``.  Presets ``{ID, ENTITY_TYPE_ID, COUNTRY_ID, NAME, DATE_CREATE,
DATE_MODIFY, CREATED_BY_ID, MODIFY_BY_ID, XML_ID, ACTIVE, SORT}`` —
``api-reference/crm/requisites/presets/crm-requisite-preset-list.md``.

UNVERIFIED: the error for a missing ``NAME`` (marked required in ``crm-requisite-add.md``; the
emulator answers ``The field "Name" is required.``); preset 4 (Ukraine, ``COUNTRY_ID`` 14, holds
``RQ_EDRPOU``) is an emulator choice — real portals list the presets of their own country.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from relay.emulator.core import EmuError, Reply, param, validation
from relay.emulator.reclist import Catalogue, list_records
from relay.emulator.state import PortalState
from relay.emulator.values import intval, iso, php_str, strict_id

Handler = Callable[[PortalState, Mapping[str, Any]], Reply]

_RQ: tuple[str, ...] = (
    "RQ_NAME", "RQ_FIRST_NAME", "RQ_LAST_NAME", "RQ_SECOND_NAME", "RQ_COMPANY_ID", "RQ_COMPANY_NAME",
    "RQ_COMPANY_FULL_NAME", "RQ_COMPANY_REG_DATE", "RQ_DIRECTOR", "RQ_ACCOUNTANT", "RQ_CEO_NAME",
    "RQ_CEO_WORK_POS", "RQ_CONTACT", "RQ_EMAIL", "RQ_PHONE", "RQ_FAX", "RQ_IDENT_TYPE", "RQ_IDENT_DOC",
    "RQ_IDENT_DOC_SER", "RQ_IDENT_DOC_NUM", "RQ_IDENT_DOC_PERS_NUM", "RQ_IDENT_DOC_DATE",
    "RQ_IDENT_DOC_ISSUED_BY", "RQ_IDENT_DOC_DEP_CODE", "RQ_INN", "RQ_KPP", "RQ_USRLE", "RQ_IFNS", "RQ_OGRN",
    "RQ_OGRNIP", "RQ_OKPO", "RQ_OKTMO", "RQ_OKVED", "RQ_EDRPOU", "RQ_DRFO", "RQ_KBE", "RQ_IIN", "RQ_BIN",
    "RQ_ST_CERT_SER", "RQ_ST_CERT_NUM", "RQ_ST_CERT_DATE", "RQ_VAT_PAYER", "RQ_VAT_ID", "RQ_VAT_CERT_SER",
    "RQ_VAT_CERT_NUM", "RQ_VAT_CERT_DATE", "RQ_RESIDENCE_COUNTRY", "RQ_BASE_DOC", "RQ_REGON", "RQ_KRS",
    "RQ_PESEL", "RQ_LEGAL_FORM", "RQ_SIRET", "RQ_SIREN", "RQ_CAPITAL", "RQ_RCS", "RQ_CNPJ", "RQ_STATE_REG",
    "RQ_MNPL_REG", "RQ_CPF",
)
#: fields in ``crm.requisite.get`` order (``crm-requisite-get.md``)
FIELDS: tuple[str, ...] = (
    "ID", "ENTITY_TYPE_ID", "ENTITY_ID", "PRESET_ID", "DATE_CREATE", "DATE_MODIFY", "CREATED_BY_ID",
    "MODIFY_BY_ID", "NAME", "CODE", "XML_ID", "ORIGINATOR_ID", "ACTIVE", "ADDRESS_ONLY", "SORT", *_RQ,
)
_READ_ONLY = {"ID", "DATE_CREATE", "DATE_MODIFY", "CREATED_BY_ID", "MODIFY_BY_ID"}
_YN = {"ACTIVE", "ADDRESS_ONLY", "RQ_VAT_PAYER"}
#: string fields: ``=RQ_EDRPOU`` ``"00032129"`` must not find ``"32129"`` (compared as text)
TEXT = frozenset({"NAME", "CODE", "XML_ID", "ORIGINATOR_ID",
                  *(n for n in _RQ if not n.endswith("_DATE") and n not in _YN)})

PRESETS: tuple[dict[str, Any], ...] = tuple(
    {"ID": str(i), "ENTITY_TYPE_ID": "8", "COUNTRY_ID": country, "NAME": name,
     "DATE_CREATE": "2024-01-01T00:00:00+03:00", "DATE_MODIFY": None, "CREATED_BY_ID": "1",
     "MODIFY_BY_ID": None, "XML_ID": xml_id, "ACTIVE": "Y", "SORT": str(sort)}
    for i, country, name, xml_id, sort in (
        (1, "1", "Organization", "#CRM_REQUISITE_PRESET_DEF_RU_COMPANY#", 500),
        (2, "1", "Sole Proprietorship", "#CRM_REQUISITE_PRESET_DEF_RU_INDIVIDUAL#", 500),
        (3, "1", "Individual", "#CRM_REQUISITE_PRESET_DEF_RU_PERSON#", 500),
        (4, "14", "Organization (Ukraine)", "#CRM_REQUISITE_PRESET_DEF_UA_COMPANY#", 500),
    )
)
_OWNERS = {3: "contact", 4: "company"}


def _requisite(state: PortalState, params: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    rq_id = strict_id(param(params, "id"))
    if rq_id is None:
        raise EmuError(400, "", "ID is not defined or invalid.")
    record = state.requisites.get(rq_id)
    if record is None:
        raise EmuError(400, "", f"The Requisite with ID '{rq_id}' is not found")
    return rq_id, record


def _clean(fields: Any) -> dict[str, Any]:
    if not isinstance(fields, Mapping):
        raise validation("Parameter 'fields' must be array.")
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name in FIELDS and name not in _READ_ONLY:
            if name in _YN:
                out[name] = "Y" if php_str(value).upper() in ("Y", "1", "TRUE") else "N"
            else:
                out[name] = None if value in (None, "") else php_str(value)
    return out


def _check_owner(state: PortalState, record: Mapping[str, Any]) -> None:
    entity_type = strict_id(record.get("ENTITY_TYPE_ID"))
    if entity_type not in _OWNERS:
        raise EmuError(400, "", "ENTITY_TYPE_ID is not defined or invalid.")
    entity_id = strict_id(record.get("ENTITY_ID"))
    if entity_id is None:
        raise EmuError(400, "", "ENTITY_ID is not defined or invalid.")
    if strict_id(record.get("PRESET_ID")) not in {int(p["ID"]) for p in PRESETS}:
        raise EmuError(400, "", "PRESET_ID is not defined or invalid.")
    owners = state.companies if _OWNERS[entity_type] == "company" else state.contacts
    if entity_id not in owners:
        raise EmuError(400, "", "Entity not found.")
    if not php_str(record.get("NAME")).strip():
        raise validation('The field "Name" is required.')


def add(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.requisite.add``: returns the new id — ``crm-requisite-add.md``."""
    clean = _clean(param(params, "fields"))
    _check_owner(state, clean)
    rq_id = state.next_id("requisite")
    record: dict[str, Any] = dict.fromkeys(FIELDS)
    record.update({"ID": str(rq_id), "DATE_CREATE": iso(state.now()), "DATE_MODIFY": "",
                   "CREATED_BY_ID": str(state.config.user_id), "ACTIVE": "Y", "ADDRESS_ONLY": "N",
                   "SORT": "500", "RQ_VAT_PAYER": "N"})
    record.update(clean)
    for name in ("ENTITY_TYPE_ID", "ENTITY_ID", "PRESET_ID", "SORT"):
        record[name] = str(intval(record[name]))
    state.requisites[rq_id] = record
    return Reply(rq_id)


def get(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.requisite.get`` — ``crm-requisite-get.md``."""
    return Reply(dict(_requisite(state, params)[1]))


def update(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.requisite.update``: changes only the given fields — ``crm-requisite-update.md``."""
    rq_id, old = _requisite(state, params)
    record = {**old, **_clean(param(params, "fields"))}
    _check_owner(state, record)
    for name in ("ENTITY_TYPE_ID", "ENTITY_ID", "PRESET_ID", "SORT"):
        record[name] = str(intval(record[name]))
    record["DATE_MODIFY"] = iso(state.now())
    record["MODIFY_BY_ID"] = str(state.config.user_id)
    state.requisites[rq_id] = record
    return Reply(True)


def delete(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.requisite.delete`` — ``crm-requisite-delete.md``."""
    rq_id, _record = _requisite(state, params)
    del state.requisites[rq_id]
    return Reply(True)


def list_(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.requisite.list``: all fields unless ``select`` — ``crm-requisite-list.md``."""
    cat = Catalogue(standard=FIELDS, default_select=("*",), text=TEXT)
    return list_records(cat, state.requisites.values(), params, state.tz)


def preset_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.requisite.preset.list`` — ``crm-requisite-preset-list.md``."""
    cat = Catalogue(standard=tuple(PRESETS[0]), default_select=("*",))
    return list_records(cat, PRESETS, params, state.tz)


HANDLERS: dict[str, Handler] = {
    "crm.requisite.add": add,
    "crm.requisite.get": get,
    "crm.requisite.update": update,
    "crm.requisite.delete": delete,
    "crm.requisite.list": list_,
    "crm.requisite.preset.list": preset_list,
}
