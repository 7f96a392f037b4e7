"""``crm.deal.userfield.add/list/get``: custom deal fields a client creates and reads back.

Docs: ``api-reference/crm/deals/user-defined-fields/crm-deal-userfield-{add,list,get}.md``.
``add`` takes ``fields``: ``FIELD_NAME`` (``X`` -> ``UF_CRM_X``, ``UF_X`` -> ``UF_CRM_X``, upper-cased,
``A-Z0-9_``, at most 50 characters), ``USER_TYPE_ID``, ``LABEL`` (the default of ``EDIT_FORM_LABEL``,
``LIST_COLUMN_LABEL``, ``LIST_FILTER_LABEL``, ``ERROR_MESSAGE``, ``HELP_MESSAGE``; each a string for every
language or a ``lang_map``), ``MULTIPLE``, ``MANDATORY``, ``SORT`` (100), ``XML_ID``, ``SETTINGS`` and
``LIST`` (``VALUE``/``SORT``/``DEF``/``XML_ID`` items of an ``enumeration``; empty ``VALUE`` ignored) and
answers the new field's id.  ``get`` answers labels as language maps; ``list`` (exact ``filter`` on the
documented keys, ``order`` over ``ID``/``FIELD_NAME``/``USER_TYPE_ID``/``XML_ID``/``SORT``, default
``SORT``, ``ID``) answers labels as strings only with ``filter.LANG`` and ``total`` without paging.

A created field joins the portal's ``uf_fields`` (with ``uf_multiple``, ``enum_items``, ``field_labels``,
``required_fields`` for ``MANDATORY``), so ``crm.deal.fields`` describes it and ``crm.deal.add/update/get/
list`` carry it; existing deals read it empty.  The configured fields get records on first read.

Errors: missing ``FIELD_NAME``/``USER_TYPE_ID`` 400 ``""`` "The 'X' field is not found."; bad name,
unknown type, duplicate list ``XML_ID`` ``ERROR_CORE`` (add page).  A name that exists: ``ERROR_CORE``
"The field UF_CRM_X for the CRM_DEAL object already exists." — worded as
``api-reference/crm/requisites/user-fields/crm-requisite-userfield-add.md`` documents it for
``CRM_REQUISITE``.  UNVERIFIED: that wording for deals and its HTTP 400; ``get`` of an unknown id
answering 404; the numbering of fields (from 101) and list items; ``SHOW_FILTER`` ``Y`` stored as ``E``;
``MULTIPLE`` ignored for ``boolean``; one label (the portal language's ``EDIT_FORM_LABEL``, else
``LIST_COLUMN_LABEL``, ``LIST_FILTER_LABEL``, ``LABEL``) shown in all three ``crm.deal.fields`` labels.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any

from relay.emulator.core import EmuError, Reply, param, validation
from relay.emulator.state import PortalState
from relay.emulator.uf import empty_uf
from relay.emulator.values import intval, php_str, strict_id

Handler = Callable[[PortalState, Mapping[str, Any]], Reply]
ENTITY_ID = "CRM_DEAL"
LANG = "en"  # the emulated portal's language
#: the languages of a label map (crm-deal-userfield-get.md example)
LANGS: tuple[str, ...] = ("ar", "br", "de", "en", "fr", "hi", "id", "in", "it", "ja", "kz", "la", "ms", "pl",
                          "ru", "sc", "tc", "th", "tr", "ua", "vn")
LABELS: tuple[str, ...] = ("EDIT_FORM_LABEL", "LIST_COLUMN_LABEL", "LIST_FILTER_LABEL", "ERROR_MESSAGE",
                           "HELP_MESSAGE")
TYPES = frozenset({"string", "integer", "double", "boolean", "datetime", "date", "money", "url", "address",
                   "enumeration", "file", "employee", "crm_status", "iblock_section", "iblock_element", "crm"})
_FILTERABLE = ("ID", "FIELD_NAME", "USER_TYPE_ID", "XML_ID", "SORT", "MULTIPLE", "MANDATORY", "SHOW_FILTER",
               "SHOW_IN_LIST", "EDIT_IN_LIST", "IS_SEARCHABLE")
_FLAGS = frozenset({"MULTIPLE", "MANDATORY", "SHOW_IN_LIST", "EDIT_IN_LIST", "IS_SEARCHABLE"})  # Y/N
_ORDERABLE = ("ID", "FIELD_NAME", "USER_TYPE_ID", "XML_ID", "SORT")
_NAME = re.compile(r"^[A-Z0-9_]+$")
_YES = {"Y", "y", "1", "true", "TRUE", "True"}
_SETTINGS: dict[str, dict[str, Any]] = {
    "string": {"SIZE": 20, "ROWS": 1, "REGEXP": "", "MIN_LENGTH": 0, "MAX_LENGTH": 0, "DEFAULT_VALUE": ""},
    "enumeration": {"DISPLAY": "LIST", "LIST_HEIGHT": 1, "CAPTION_NO_VALUE": "", "SHOW_NO_VALUE": "Y"},
}


def _core(text: str) -> EmuError:
    return EmuError(400, "ERROR_CORE", text)


def _yn(value: Any, default: str = "N") -> str:
    if value in (None, ""):
        return default
    return "Y" if value is True or php_str(value) in _YES else "N"


def full_name(raw: Any) -> str:
    """``FIELD_NAME`` as the portal stores it: upper-case with the ``UF_CRM_`` prefix (add page)."""
    name = php_str(raw).strip().upper()
    if name.startswith("UF_CRM_"):
        return name
    return "UF_CRM_" + (name[3:] if name.startswith("UF_") else name)


def _lang_map(value: Any, fallback: str) -> dict[str, str]:
    """A label given as one string (every language) or a ``lang_map`` (``fallback`` for the others)."""
    if isinstance(value, Mapping):
        return {lang: php_str(value.get(lang, fallback)) for lang in LANGS}
    return dict.fromkeys(LANGS, php_str(value) if value not in (None, "") else fallback)


def _configured(state: PortalState, name: str, field_id: int) -> dict[str, Any]:
    """The record of a field the portal was configured with."""
    text = state.config.field_labels.get(name, "")
    uf_type = state.config.uf_fields[name]
    return {
        "ID": field_id, "XML_ID": None, "SORT": 100, "SHOW_FILTER": "N", "SHOW_IN_LIST": "Y", "EDIT_IN_LIST": "Y",
        "IS_SEARCHABLE": "N", "SETTINGS": dict(_SETTINGS.get(uf_type, {})),
        "labels": {kind: dict.fromkeys(LANGS, text if kind in LABELS[:3] else "") for kind in LABELS},
        "items": {},
    }


def records(state: PortalState) -> dict[str, dict[str, Any]]:
    """Every custom deal field's record by name, the configured ones numbered on first sight."""
    known = state.deal_userfields
    for name in list(known):
        if name not in state.config.uf_fields:
            del known[name]
    state.counters.setdefault("userfield", 100)
    for name in state.config.uf_fields:
        if name not in known:
            known[name] = _configured(state, name, state.next_id("userfield"))
    return known


def _item_xml(name: str, item_id: str) -> str:
    return hashlib.md5(f"{name}:{item_id}".encode()).hexdigest()  # a 32-hex code like the docs' (not a secret)


def _view(state: PortalState, name: str, record: Mapping[str, Any], lang: str | None) -> dict[str, Any]:
    """One field as ``get`` (``lang`` None: label maps) or ``list`` (``lang``: strings, else none) shows it."""
    config = state.config
    uf_type = config.uf_fields[name]
    out: dict[str, Any] = {
        "ID": str(record["ID"]), "ENTITY_ID": ENTITY_ID, "FIELD_NAME": name, "USER_TYPE_ID": uf_type,
        "XML_ID": record["XML_ID"], "SORT": str(record["SORT"]), "MULTIPLE": _yn(name in config.uf_multiple),
        "MANDATORY": _yn(name in config.required_fields), "SHOW_FILTER": record["SHOW_FILTER"],
        "SHOW_IN_LIST": record["SHOW_IN_LIST"], "EDIT_IN_LIST": record["EDIT_IN_LIST"],
        "IS_SEARCHABLE": record["IS_SEARCHABLE"], "SETTINGS": dict(record["SETTINGS"]),
    }
    for kind in LABELS:
        labels = record["labels"][kind]
        if lang is None:
            out[kind] = dict(labels)
        elif lang:
            out[kind] = labels.get(lang) or None
    if uf_type == "enumeration":
        items = record["items"]
        out["LIST"] = [
            {"ID": item_id, "SORT": str(items.get(item_id, {}).get("SORT", (i + 1) * 10)), "VALUE": value,
             "DEF": items.get(item_id, {}).get("DEF", "N"),
             "XML_ID": items.get(item_id, {}).get("XML_ID") or _item_xml(name, item_id)}
            for i, (item_id, value) in enumerate(config.enum_map(name).items())
        ]
    return out


def _list_items(state: PortalState, name: str, raw: Any, multiple: bool) -> dict[str, dict[str, Any]]:
    """``LIST`` -> ``{item id: {VALUE, SORT, DEF, XML_ID}}``; empty values skipped, ``XML_ID`` unique."""
    entries = list(raw.values()) if isinstance(raw, Mapping) else raw if isinstance(raw, list) else []
    used = [intval(i) for n in state.config.uf_fields for i in state.config.enum_map(n)]
    state.counters["enum_item"] = max([state.counters.get("enum_item", 0), *used])
    out: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    default_taken = False
    for entry in entries:
        if not isinstance(entry, Mapping) or php_str(entry.get("VALUE")).strip() == "":
            continue
        xml_id = php_str(entry.get("XML_ID"))
        if xml_id and xml_id in seen:
            raise _core(f"List item with value XML_ID={xml_id} already exists.")
        seen.add(xml_id)
        default = _yn(entry.get("DEF")) == "Y" and (multiple or not default_taken)
        default_taken = default_taken or default
        item_id = str(state.next_id("enum_item"))
        out[item_id] = {"VALUE": php_str(entry["VALUE"]), "SORT": max(0, intval(entry.get("SORT"))),
                        "DEF": _yn(default), "XML_ID": xml_id or _item_xml(name, item_id)}
    return out


def _checked(state: PortalState, fields: Mapping[str, Any]) -> tuple[str, str]:
    """``(full name, type)`` of a field to add, or the add page's errors."""
    if php_str(fields.get("FIELD_NAME")).strip() == "":
        raise validation("The 'FIELD_NAME' field is not found.")
    if php_str(fields.get("USER_TYPE_ID")).strip() == "":
        raise validation("The 'USER_TYPE_ID' field is not found.")
    name = full_name(fields["FIELD_NAME"])
    if len(name) > 50:
        raise _core("Field name is too long (more than 50 characters).")
    if not _NAME.match(name):
        raise _core("Field name contains invalid characters. Allowed characters are: A-Z, 0-9 and _.")
    uf_type = php_str(fields["USER_TYPE_ID"]).strip()
    if uf_type not in TYPES:
        raise _core("Incorrect custom type specified.")
    if name in records(state):
        raise _core(f"The field {name} for the {ENTITY_ID} object already exists.")
    return name, uf_type


def userfield_add(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.userfield.add``: the new field's id — ``crm-deal-userfield-add.md``."""
    fields = param(params, "fields")
    if not isinstance(fields, Mapping):
        raise validation("Parameter 'fields' must be array.")
    name, uf_type = _checked(state, fields)
    multiple = _yn(fields.get("MULTIPLE")) == "Y" and uf_type != "boolean"
    items = _list_items(state, name, fields.get("LIST"), multiple) if uf_type == "enumeration" else {}
    fallback = php_str(fields.get("LABEL"))
    labels = {kind: _lang_map(fields.get(kind), fallback) for kind in LABELS}
    settings = fields.get("SETTINGS")
    field_id = state.next_id("userfield")
    state.deal_userfields[name] = {
        "ID": field_id, "XML_ID": php_str(fields.get("XML_ID")) or None,
        "SORT": intval(fields.get("SORT")) if intval(fields.get("SORT")) > 0 else 100,
        "SHOW_FILTER": "E" if _yn(fields.get("SHOW_FILTER")) == "Y" else "N",
        "SHOW_IN_LIST": _yn(fields.get("SHOW_IN_LIST")), "EDIT_IN_LIST": _yn(fields.get("EDIT_IN_LIST"), "Y"),
        "IS_SEARCHABLE": _yn(fields.get("IS_SEARCHABLE")),
        "SETTINGS": {**_SETTINGS.get(uf_type, {}), **(settings if isinstance(settings, Mapping) else {})},
        "labels": labels, "items": items,
    }
    _register(state, name, uf_type, multiple, _yn(fields.get("MANDATORY")) == "Y", items, labels)
    return Reply(field_id)


def _register(state: PortalState, name: str, uf_type: str, multiple: bool, mandatory: bool,
              items: Mapping[str, Mapping[str, Any]], labels: Mapping[str, Mapping[str, str]]) -> None:
    """Make the field a deal field: config entries, and an empty value on every existing deal."""
    config = state.config
    config.uf_fields[name] = uf_type
    if multiple:
        config.uf_multiple.append(name)
    if mandatory:
        config.required_fields.append(name)
    if uf_type == "enumeration":
        config.enum_items[name] = {int(k): v["VALUE"] for k, v in items.items()}
    text = next((labels[k][LANG] for k in LABELS[:3] if labels[k][LANG]), "")
    if text:
        config.field_labels[name] = text
    for deal in state.deals.values():
        deal.setdefault(name, empty_uf(state, name))


def userfield_get(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.userfield.get`` by ``id`` — ``crm-deal-userfield-get.md``."""
    field_id = strict_id(param(params, "id"))
    if field_id is None:
        raise validation("ID is not defined or invalid.")
    for name, record in records(state).items():
        if record["ID"] == field_id:
            return Reply(_view(state, name, record, None))
    raise EmuError(404, "ERROR_NOT_FOUND", f"The entity with ID '{field_id}' is not found.")


def _matches(view: Mapping[str, Any], flt: Mapping[str, Any]) -> bool:
    for key, wanted in flt.items():
        name = str(key).lstrip("=")
        if name not in _FILTERABLE:
            continue  # LANG and unknown keys select nothing
        have, want = view.get(name), wanted
        if name in ("ID", "SORT"):
            have, want = intval(have), intval(want)
        elif name in _FLAGS:
            want = _yn(want)
        if php_str(have) != php_str(want):
            return False
    return True


def userfield_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.deal.userfield.list`` with ``filter``/``order`` and ``total`` — ``crm-deal-userfield-list.md``."""
    flt, order = param(params, "filter"), param(params, "order")
    if flt not in (None, "", []) and not isinstance(flt, Mapping):
        raise validation("Parameter 'filter' must be array.")
    if order not in (None, "", []) and not isinstance(order, Mapping):
        raise validation("Parameter 'order' must be array.")
    flt = flt if isinstance(flt, Mapping) else {}
    lang = php_str(flt.get("LANG")).lower() or ""
    views = [_view(state, n, r, lang) for n, r in records(state).items()]
    found = [v for v in views if _matches(v, flt)]
    keys = [(str(k), php_str(d).upper() == "DESC") for k, d in (order or {"SORT": "ASC", "ID": "ASC"}).items()
            if str(k) in _ORDERABLE]
    found.sort(key=lambda v: int(v["ID"]))
    for name, descending in reversed(keys):
        found.sort(key=_column(name), reverse=descending)
    return Reply(found, total=len(found))


def _column(name: str) -> Callable[[Mapping[str, Any]], Any]:
    if name in ("ID", "SORT"):
        return lambda view: intval(view[name])
    return lambda view: php_str(view[name])


HANDLERS: dict[str, Handler] = {
    "crm.deal.userfield.add": userfield_add,
    "crm.deal.userfield.get": userfield_get,
    "crm.deal.userfield.list": userfield_list,
}
