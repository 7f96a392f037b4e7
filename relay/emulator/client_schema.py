"""Field catalogues of companies and contacts, and ``crm.company.fields`` / ``crm.contact.fields``.

Fields, types and read-only flags — ``api-reference/crm/companies/crm-company-fields.md``,
``api-reference/crm/contacts/crm-contact-fields.md``; output order — the ``crm.*.get`` examples
(``crm-company-get.md``, ``crm-contact-get.md``).  Kinds: ``str``, ``int``, ``link`` (id or
``null``), ``money``, ``yn``, ``date``, ``datetime``, ``user``, ``currency``, ``ro`` (never
written through REST).
"""

from __future__ import annotations

from typing import Any

from relay.emulator.multifields import KINDS as MULTI_KINDS

_ADDRESS = ("ADDRESS", "ADDRESS_2", "ADDRESS_CITY", "ADDRESS_POSTAL_CODE", "ADDRESS_REGION",
            "ADDRESS_PROVINCE", "ADDRESS_COUNTRY", "ADDRESS_COUNTRY_CODE")
_UTM = ("UTM_SOURCE", "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_CONTENT", "UTM_TERM")
_ORIGIN = ("ORIGINATOR_ID", "ORIGIN_ID", "ORIGIN_VERSION")

#: name -> (REST type, kind, title, read-only)
Spec = tuple[str, str, str, bool]


def _s(names: tuple[str, ...]) -> dict[str, Spec]:
    return {n: ("string", "str", n.replace("_", " ").capitalize(), False) for n in names}


COMPANY: dict[str, Spec] = {
    "ID": ("integer", "int", "ID", True),
    "COMPANY_TYPE": ("crm_status", "str", "Company Type", False),
    "TITLE": ("string", "str", "Company Name", False),
    "LOGO": ("file", "ro", "Logo", True),  # file upload is not emulated
    "LEAD_ID": ("crm_lead", "ro", "Lead", True),
    "HAS_PHONE": ("char", "ro", "Phone Set", True),
    "HAS_EMAIL": ("char", "ro", "E-mail Set", True),
    "HAS_IMOL": ("char", "ro", "Open Line Set", True),
    "ASSIGNED_BY_ID": ("user", "user", "Responsible Person", False),
    "CREATED_BY_ID": ("user", "ro", "Created By", True),
    "MODIFY_BY_ID": ("user", "ro", "Modified By", True),
    "BANKING_DETAILS": ("string", "str", "Banking Details", False),
    "INDUSTRY": ("crm_status", "str", "Industry", False),
    "REVENUE": ("double", "money", "Annual Revenue", False),
    "CURRENCY_ID": ("crm_currency", "currency", "Currency", False),
    "EMPLOYEES": ("crm_status", "str", "Number of Employees", False),
    "COMMENTS": ("string", "str", "Comment", False),
    "DATE_CREATE": ("datetime", "ro", "Creation Date", True),
    "DATE_MODIFY": ("datetime", "ro", "Modification Date", True),
    "OPENED": ("char", "yn", "Available to Everyone", False),
    "IS_MY_COMPANY": ("char", "yn", "My Company", False),
    **_s(_ORIGIN),
    **_s(_ADDRESS), "ADDRESS_LOC_ADDR_ID": ("integer", "int", "Location Address ID", False),
    **_s(("ADDRESS_LEGAL",)),
    **_s(tuple("REG_" + n for n in _ADDRESS)),
    "REG_ADDRESS_LOC_ADDR_ID": ("integer", "int", "Legal Address Location ID", False),
    **_s(_UTM),
    "LAST_ACTIVITY_BY": ("user", "ro", "Last Activity Author", True),
    "LAST_ACTIVITY_TIME": ("datetime", "ro", "Last Activity Time", True),
    "LAST_COMMUNICATION_TIME": ("string", "ro", "Last Communication Date", True),
}

CONTACT: dict[str, Spec] = {
    "ID": ("integer", "int", "ID", True),
    "POST": ("string", "str", "Position", False),
    "COMMENTS": ("string", "str", "Comment", False),
    "HONORIFIC": ("crm_status", "str", "Salutation", False),
    "NAME": ("string", "str", "First Name", False),
    "SECOND_NAME": ("string", "str", "Middle Name", False),
    "LAST_NAME": ("string", "str", "Last Name", False),
    "PHOTO": ("file", "ro", "Photo", True),  # file upload is not emulated
    "LEAD_ID": ("crm_lead", "ro", "Lead", True),
    "TYPE_ID": ("crm_status", "str", "Contact Type", False),
    "SOURCE_ID": ("crm_status", "str", "Source", False),
    "SOURCE_DESCRIPTION": ("string", "str", "Additional Source Information", False),
    "COMPANY_ID": ("crm_company", "ro", "Company", False),  # written via the company bindings
    "BIRTHDATE": ("date", "date", "Birthdate", False),
    "EXPORT": ("char", "yn", "Participates in Contact Export", False),
    "HAS_PHONE": ("char", "ro", "Phone Set", True),
    "HAS_EMAIL": ("char", "ro", "E-mail Set", True),
    "HAS_IMOL": ("char", "ro", "Open Line Set", True),
    "DATE_CREATE": ("datetime", "ro", "Creation Date", True),
    "DATE_MODIFY": ("datetime", "ro", "Modification Date", True),
    "ASSIGNED_BY_ID": ("user", "user", "Responsible Person", False),
    "CREATED_BY_ID": ("user", "ro", "Created By", True),
    "MODIFY_BY_ID": ("user", "ro", "Modified By", True),
    "OPENED": ("char", "yn", "Available to All", False),
    **_s(_ORIGIN),
    "FACE_ID": ("integer", "ro", "FACE_ID", True),
    "LAST_ACTIVITY_TIME": ("datetime", "ro", "Last Activity", True),
    **_s(_ADDRESS), "ADDRESS_LOC_ADDR_ID": ("integer", "int", "Location Address ID", False),
    **_s(_UTM),
    "LAST_ACTIVITY_BY": ("user", "ro", "Last Activity By", True),
}

#: writable but never returned by ``crm.*.get``/``list`` (``crm-contact-fields.md``/``crm-company-fields.md``)
HIDDEN: dict[str, dict[str, Spec]] = {
    "company": {"CONTACT_ID": ("crm_contact", "ids", "Contact", False)},
    "contact": {"COMPANY_IDS": ("crm_company", "ids", "COMPANY_IDS", False)},
}

CATALOGUES: dict[str, dict[str, Spec]] = {"company": COMPANY, "contact": CONTACT}

_STATUS_TYPES = {"COMPANY_TYPE": "COMPANY_TYPE", "INDUSTRY": "INDUSTRY", "EMPLOYEES": "EMPLOYEES",
                 "HONORIFIC": "HONORIFIC", "TYPE_ID": "CONTACT_TYPE", "SOURCE_ID": "SOURCE"}


def describe(entity: str, uf: dict[str, tuple[str, bool]]) -> dict[str, dict[str, Any]]:
    """The ``crm.company.fields`` / ``crm.contact.fields`` result (``data-types.md#crm_rest_field_description``)."""
    out: dict[str, dict[str, Any]] = {}
    specs = {**CATALOGUES[entity], **HIDDEN[entity]}
    for name, (rest_type, kind, title, read_only) in specs.items():
        desc: dict[str, Any] = {"type": rest_type, "isRequired": False, "isReadOnly": read_only,
                                "isImmutable": False, "isMultiple": kind == "ids", "isDynamic": False,
                                "title": title}
        if name in _STATUS_TYPES:
            desc["statusType"] = _STATUS_TYPES[name]
        out[name] = desc
    for kind in MULTI_KINDS:
        out[kind] = {"type": "crm_multifield", "isRequired": False, "isReadOnly": False,
                     "isImmutable": False, "isMultiple": True, "isDynamic": False,
                     "title": {"PHONE": "Phone", "EMAIL": "E-mail", "WEB": "Website", "IM": "Messenger"}[kind]}
    for name, (uf_type, multiple) in uf.items():
        out[name] = {"type": uf_type, "isRequired": False, "isReadOnly": False, "isImmutable": False,
                     "isMultiple": multiple, "isDynamic": True, "title": name, "listLabel": name,
                     "formLabel": name, "filterLabel": name, "upperName": name}
    return out
