"""Pure: the mapping of a 1C base (YAML -> validated spec) — counterparties to companies, invoices to
deals or smart invoices — and the transform of an invoice.

The rule language is the deal mapping's (copy, template, ``const``, ``from``/``map``/``default``,
``tables``, ``create_only``); source names are the keys the 1C module sends (``Наименование``,
``НомерДокумента``…) plus the values the intake derives (``Валюта``, ``Год``; :mod:`relay.intake.onec`).
Target names are Bitrix24's UPPER_CASE field names (``TITLE``, ``OPPORTUNITY``, ``CURRENCY_ID``,
``UF_CRM_…``); for smart invoices they are written through ``crm.item.*`` in camelCase
(:func:`camel`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from relay import yamlconf
from relay.errors import MappingError
from relay.mapping.deal import ClientSpec, FieldSpec, Table, TargetField, map_fields
from relay.yamlconf import normalize_dict, problem, raise_problems, scalar_text

_STRICT = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: ``entityTypeId`` of the target record kinds (``api-reference/crm/universal/index.md``)
ENTITY_TYPE = {"deal": 2, "invoice": 31}


class OneCClientSpec(ClientSpec):
    """``clients:`` — counterparties as companies; ``deletes``: what a deletion in 1C does to the company."""

    deletes: Literal["comment", "delete", "ignore"] = "comment"


class OneCProducts(BaseModel):
    """Positions -> product rows: ``КодТовара`` to a catalog product by ``ids`` or by the product's
    ``XML_ID`` (``xml_id: true``), else a free-text row (or a failure with ``unmapped: error``)."""

    model_config = _STRICT
    ids: dict[str, int] = {}
    xml_id: bool = False
    unmapped: Literal["free_text", "error"] = "free_text"

    @field_validator("ids", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        return normalize_dict(value or {}, scalar_text, lambda v: int(scalar_text(v)))


class DocumentDeletes(BaseModel):
    """What a deletion in 1C does to the target record: ``comment`` (default), ``stage``, ``delete``, ``ignore``."""

    model_config = _STRICT
    policy: Literal["comment", "stage", "delete", "ignore"] = "comment"
    stage: str | None = None

    @model_validator(mode="after")
    def _stage_given(self) -> DocumentDeletes:
        if self.policy == "stage" and not self.stage:
            raise problem("policy: stage needs stage: <target stage id>, e.g. C2:LOSE or DT31_2:D")
        return self


class DocumentSpec(BaseModel):
    """``incoming:`` / ``outgoing:`` — invoices as deals (``target: deal``) or smart invoices (``invoice``)."""

    model_config = _STRICT
    target: Literal["deal", "invoice"] = "deal"
    fields: dict[TargetField, FieldSpec]
    create_only: tuple[str, ...] = ()
    products: OneCProducts = OneCProducts()
    deletes: DocumentDeletes = DocumentDeletes()

    @field_validator("create_only", mode="before")
    @classmethod
    def _null(cls, value: Any) -> Any:
        return () if value is None else value

    @field_validator("deletes", mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        return {"policy": value} if isinstance(value, str) else value


class OneCMappingSpec(BaseModel):
    """One 1C base's mapping file, validated (with the context ``names: 1c``)."""

    model_config = _STRICT
    clients: OneCClientSpec | None = None
    incoming: DocumentSpec | None = None
    outgoing: DocumentSpec | None = None
    tables: dict[str, Table] = {}

    @field_validator("tables", mode="before")
    @classmethod
    def _null(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _cross_references(self) -> OneCMappingSpec:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        sections = {"clients": self.clients, "incoming": self.incoming, "outgoing": self.outgoing}
        for part, sect in sections.items():
            if sect is None:
                continue
            for name, fs in sect.fields.items():
                if isinstance(fs.map, str) and fs.map not in self.tables:
                    problems.append(((part, "fields", name, "map"), f"no table {fs.map!r} in tables"))
            for index, name in enumerate(sect.create_only):
                if name not in sect.fields:
                    problems.append(((part, "create_only", index), f"{name} is not a key of fields"))
        for part in ("incoming", "outgoing"):
            doc = sections[part]
            if doc is not None and "COMPANY_ID" in doc.fields:
                problems.append(((part, "fields", "COMPANY_ID"), "COMPANY_ID is filled by the relay (the "
                                 "counterparty, through the clients section); remove it"))
            if doc is not None and self.clients is None:
                problems.append(((part,), "invoices need a clients section: their company is found or created "
                                 "through it"))
        raise_problems(problems, "OneCMappingSpec")
        return self

    # what relay.sync.clients needs of a spec
    @property
    def company(self) -> ClientSpec | None:
        return self.clients

    @property
    def contacts(self) -> ClientSpec | None:
        return None

    def table_for(self, fs: FieldSpec) -> Mapping[str, str] | None:
        """The translation table a field spec uses (inline or named), or None."""
        return self.tables[fs.map] if isinstance(fs.map, str) else fs.map


def load_onec_mapping(path: Path, env: Mapping[str, str]) -> OneCMappingSpec:
    """Load and validate a 1C mapping file; ``ConfigError`` names file, key path and line."""
    return yamlconf.validate(OneCMappingSpec, yamlconf.load_yaml(path, env), context={"names": "1c"})


@dataclass(frozen=True)
class TargetDocument:
    """A translated invoice: create fields (no empty values), update fields (clears), product rows
    (``crm.item.productrow.set`` camelCase, ``productId`` None = look up by ``КодТовара`` as ``XML_ID``)."""

    fields: dict[str, Any]
    update_fields: dict[str, Any]
    rows: list[dict[str, Any]]


def transform(data: Mapping[str, Any], spec: OneCMappingSpec, doc: DocumentSpec, source: Mapping[str, str],
              products: Mapping[str, int] | None = None) -> TargetDocument:
    """Translate a 1C invoice; ``products`` are target ids found by ``XML_ID`` (``КодТовара`` -> id)."""
    fields, update = map_fields(data, doc.fields, doc.create_only, spec, source)
    rows = []
    for n, pos in enumerate(data.get("positions") or []):
        code = str(pos.get("КодТовара") or "")
        product = doc.products.ids.get(code)
        if product is None and products is not None:
            product = products.get(code)
        if product is None and doc.products.unmapped == "error":
            raise MappingError(f"positions[{n}]: product code {code!r} ({pos.get('НаименованиеТовара')!r}) is not "
                               "in products.ids" + (" nor found by XML_ID" if doc.products.xml_id else "")
                               + " (products.unmapped is error)")
        row: dict[str, Any] = {"productId": product or 0, "productName": pos.get("НаименованиеТовара") or code,
                               "price": pos.get("Цена") or 0.0, "quantity": pos.get("Количество") or 0.0}
        if pos.get("ЕдиницаИзмерения"):
            row["measureName"] = pos["ЕдиницаИзмерения"]
        rows.append(row)
    return TargetDocument(fields=fields, update_fields=update, rows=rows)


def fingerprint(doc: TargetDocument) -> str:
    """Stable sha256 hex of what an update writes (fields and rows)."""
    text = json.dumps({"fields": doc.update_fields, "rows": doc.rows}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def camel(name: str) -> str:
    """``ASSIGNED_BY_ID`` -> ``assignedById`` (``crm.item.*`` field names); ``UF_CRM_…`` stays (sent with
    ``useOriginalUfNames: Y``)."""
    if name.startswith("UF_"):
        return name
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def company_record(kind: str, data: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The counterparty an invoice names, as a client record for :mod:`relay.sync.clients`: (key, record,
    requisite).  The key is the key of the counterparty's own ``clients`` calls — its ``GuidКлиента``
    (the improved module) or ``КодКлиента`` — else its tax id, else its name."""
    name = str(data.get("Клиент" if kind == "outgoing" else "Постачальник") or data.get("Клиент") or "")
    code, guid = str(data.get("КодКлиента") or ""), str(data.get("GuidКлиента") or "").lower()
    edrpou, inn = str(data.get("ЄДРПОУ") or ""), str(data.get("ИННКлиента") or "")
    key = (f"client:{guid}" if _GUID.match(guid) else f"client:{code}" if code else f"edrpou:{edrpou}" if edrpou
           else f"inn:{inn}" if inn else f"name:{name[:80]}")
    record = {"Код": code, "Наименование": name, "ИНН": inn, "ЄДРПОУ": edrpou}
    return key, record, requisite_of(record)


def requisite_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """A counterparty's tax ids as requisite fields: ``ЄДРПОУ`` -> ``RQ_EDRPOU``, ``ИНН`` -> ``RQ_INN``."""
    out = {}
    if record.get("ЄДРПОУ"):
        out["RQ_EDRPOU"] = record["ЄДРПОУ"]
    if record.get("ИНН"):
        out["RQ_INN"] = record["ИНН"]
    return out


def describe(spec: OneCMappingSpec) -> list[str]:
    """Human summary of a 1C mapping."""
    lines = []
    if spec.clients is not None:
        lines.append(f"clients -> companies: {', '.join(spec.clients.fields)}; match {', '.join(spec.clients.rules)}, "
                     f"on match: {spec.clients.on_match}; deletes: {spec.clients.deletes}")
    for part in ("incoming", "outgoing"):
        doc: DocumentSpec | None = getattr(spec, part)
        if doc is not None:
            what = "deals" if doc.target == "deal" else "smart invoices"
            lines.append(f"{part} invoices -> {what}: {', '.join(doc.fields)}; products: {len(doc.products.ids)} ids"
                         f"{', by XML_ID' if doc.products.xml_id else ''}, unmapped -> {doc.products.unmapped}; "
                         f"deletes: {doc.deletes.policy}")
    return lines or ["nothing mapped"]


