"""Pure: the integrator's declarative deal mapping (YAML -> validated spec) and the transform.

One mapping file per source portal says how each *target* deal field is filled (``fields``),
which fields are written only on create (``create_only``), how catalog products translate
(``products``) and which target field links back to the source deal (``link_field``).  Values
differ per portal (stage ids, enumeration item ids, user ids, catalog ``PRODUCT_ID``) and must be
mapped — ``bitrix24-protocol.md`` "Consequences" 7.  Deal fields arrive as strings from
``crm.deal.get`` (``api-reference/crm/deals/crm-deal-get.md``); product rows carry JSON numbers
(``api-reference/crm/deals/crm-deal-productrows-get.md``).  Everything is checked at load time;
at run time only a value missing from a map, or an unmapped product under ``unmapped: error``,
raises :class:`~relay.errors.MappingError`.

Two rules keep the target equal to the source without the integrator spelling them out:

* **Cleared values.**  A source field that ``crm.deal.get`` returns empty (``null``, ``""``, ``[]``)
  is left out of ``crm.deal.add`` (the target keeps its defaults) and *cleared* by ``crm.deal.update``.
  Batch commands are encoded like PHP's ``http_build_query``, which drops ``null`` and ``[]``, so the
  update carries :data:`CLEAR` (``fields[X]=``) or, for a multiple field, :data:`CLEAR_MULTIPLE`
  (``fields[X][0]=``, PHP's ``['']`` — the form encoding of an empty array, written ``X[]=`` by the
  official b24pysdk, ``utils/encoding.py``; ``api-reference/tasks/deprecated/task-item/task-item-list.md``).
  An empty string clears a CRM field (``api-reference/crm/universal/crm-item-update.md``, "Remove the
  value"; ``api-reference/files/how-to-update-files.md``); which form a multiple list field needs in a
  form-encoded ``crm.deal.update`` is not documented (UNVERIFIED: the emulator accepts both).  A field
  whose source key is absent altogether is unknown, not empty, and is not written.
* **Manual amount.**  The CRM computes a deal's amount from its product rows
  (``api-reference/crm/universal/product-rows/index.md``): with rows and ``IS_MANUAL_OPPORTUNITY``
  ``N`` a save replaces ``OPPORTUNITY`` by the rows' sum
  (``tutorials/crm/how-to-edit-crm-objects/how-to-generate-edit-form-for-deal.md``), and so does
  ``crm.deal.productrows.set`` (observed; the method's page is silent).  So when the mapping writes
  ``OPPORTUNITY`` and rows are relayed, the source's ``IS_MANUAL_OPPORTUNITY`` goes along
  (:data:`MANUAL`; ``create_only`` with ``OPPORTUNITY``) unless the mapping fills that field itself.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from relay import yamlconf
from relay.errors import MappingError
from relay.mapping.files import FilesSpec
from relay.yamlconf import normalize_dict, problem, raise_problems, scalar_text

_UPPER = re.compile(r"^[A-Z][A-Z0-9_]*$")
_LINK = re.compile(r"^(ORIGIN_ID|UF_CRM_[A-Z0-9_]+)$")
_ONEC = re.compile(r"^[^\W\d]\w{0,63}$")  # a key of a 1C Структура: letters (any script), digits, _
SOURCE_KEYS = ("id", "domain", "member_id")
#: product row keys copied to the target row when present (``crm-deal-productrows-set.md``)
ROW_KEYS = ("PRODUCT_NAME", "PRICE", "QUANTITY", "DISCOUNT_TYPE_ID", "DISCOUNT_RATE",
            "DISCOUNT_SUM", "TAX_RATE", "TAX_INCLUDED", "MEASURE_CODE", "MEASURE_NAME", "SORT")
#: what ``crm.deal.update`` gets for a field emptied on the source: ``fields[X]=`` survives the batch
#: encoding, where ``null`` and ``[]`` vanish
CLEAR = ""
#: the same for a multiple field (the source gave ``[]``): ``fields[X][0]=``, i.e. PHP's ``['']``
CLEAR_MULTIPLE: tuple[str, ...] = ("",)
#: carried from the source when the mapping writes ``OPPORTUNITY`` and relays rows (module docstring)
MANUAL = "IS_MANUAL_OPPORTUNITY"
_STRICT = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
#: template pieces: ``(False, literal text)`` or ``(True, "FIELD" | "source.x")``
TemplateParts = tuple[tuple[bool, str], ...]


# --- load-time checks ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def parse_template(text: str, names: str = "portal") -> TemplateParts:
    """Split ``"Deal {ID} {{x}}"`` into literal and reference parts; ValueError if malformed.

    ``names``: ``portal`` — references are Bitrix24 field names (UPPER_CASE); ``1c`` — the keys a 1C
    module sends (``{НомерДокумента}``, any letters)."""
    parts: list[tuple[bool, str]] = []
    buf, i = "", 0
    while i < len(text):
        pair = text[i:i + 2]
        if pair in ("{{", "}}"):
            buf, i = buf + pair[0], i + 2
        elif text[i] == "}":
            raise ValueError(f"single '}}' at character {i + 1}; write '}}}}' for a literal brace")
        elif text[i] == "{":
            end = text.find("}", i)
            if end < 0:
                raise ValueError(f"'{{' at character {i + 1} is never closed; "
                                 "write '{{' for a literal brace")
            parts += [(False, buf)] if buf else []
            parts.append((True, _check_reference(text[i + 1:end], names)))
            buf, i = "", end + 1
        else:
            buf, i = buf + text[i], i + 1
    return tuple(parts + ([(False, buf)] if buf else []))


def _check_reference(name: str, names: str = "portal") -> str:
    if name.startswith("source."):
        if name[len("source."):] not in SOURCE_KEYS:
            raise ValueError(f"unknown {{{name}}}; use {{source.id}}, {{source.domain}} "
                             "or {source.member_id}")
    elif names == "1c" and not _ONEC.match(name):
        raise ValueError(f"{{{name}}} is not a key the 1C module sends (like {{НомерДокумента}})")
    elif names != "1c" and not _UPPER.match(name):
        raise ValueError(f"{{{name}}} is not a source field name (UPPER_CASE like {{TITLE}})")
    return name


def _names(info: ValidationInfo) -> str:
    """Which source names this mapping uses: ``portal`` (default) or ``1c`` (validation context)."""
    return str((info.context or {}).get("names", "portal"))


def _check_template(text: str, info: ValidationInfo) -> str:
    try:
        parse_template(text, _names(info))
    except ValueError as exc:
        raise problem(f"bad template: {exc}") from None
    return text


def _matching(pattern: re.Pattern[str], message: str, onec: tuple[re.Pattern[str], str] | None = None,
              ) -> AfterValidator:
    """Validator refusing strings not matching ``pattern``; ``{!r}`` in ``message`` is the name.
    ``onec``: the pattern and message used instead in a 1C mapping."""

    def check(name: str, info: ValidationInfo) -> str:
        rule, text = onec if onec is not None and _names(info) == "1c" else (pattern, message)
        if not rule.match(name):
            raise problem(text.replace("{!r}", repr(name)))
        return name

    return AfterValidator(check)


def _product_id_text(item: Any) -> str:
    text = scalar_text(item).strip()
    if not text.isdigit():
        raise ValueError(f"product id {item!r} must be a whole number")
    return str(int(text))


def _check_map(value: Any) -> Any:
    """A table name, or an inline map normalized like ``tables`` entries."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return normalize_dict(value, scalar_text, scalar_text)  # {79: 112} -> {"79": "112"}
    raise problem("map must be an inline mapping or the name of an entry in tables")


def _check_json_value(value: Any) -> Any:
    """Scalars and lists pass (dates become ISO strings); mappings are refused."""
    if isinstance(value, list):
        return [_check_json_value(item) for item in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        raise problem("must be a scalar or a list, not a mapping")
    return value


Table = Annotated[dict[str, str],
                  BeforeValidator(lambda value: normalize_dict(value, scalar_text, scalar_text))]
Template = Annotated[str, AfterValidator(_check_template)]
SourceField = Annotated[str, _matching(_UPPER, "{!r} is not a source field name (UPPER_CASE like "
                                                "TITLE); for fixed text write {const: ...}",
                                       (_ONEC, "{!r} is not a key the 1C module sends (like Наименование); "
                                               "for fixed text write {const: ...}"))]
TargetField = Annotated[str, _matching(_UPPER, "{!r} is not a target field name (UPPER_CASE like "
                                                "TITLE or UF_CRM_...)")]
LinkField = Annotated[str, _matching(_LINK, "link_field must be ORIGIN_ID or a custom field "
                                            "UF_CRM_...")]
ProductIds = Annotated[dict[str, NonNegativeInt],
                       BeforeValidator(lambda value: normalize_dict(value, _product_id_text))]


class FieldSpec(BaseModel):
    """How one target field is filled: exactly one of ``const``, ``from``, ``template``."""

    model_config = _STRICT
    const: Annotated[Any, AfterValidator(_check_json_value)] = None
    from_: SourceField | None = Field(None, alias="from")
    template: Template | None = None
    map: Annotated[dict[str, str] | str | None, BeforeValidator(_check_map)] = None
    default: Annotated[Any, AfterValidator(_check_json_value)] = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"template": value} if "{" in value else {"from": value}
        if not isinstance(value, dict):
            raise problem("expected a source field name, a template, or a mapping with one of "
                           "const, from, template (for a fixed value write {const: ...})")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> FieldSpec:
        kinds = [k for k in ("const", "from_", "template") if k in self.model_fields_set]
        if len(kinds) != 1:
            raise problem("give exactly one of const, from, template")
        if kinds[0] != "const" and getattr(self, kinds[0]) is None:
            raise problem(f"{kinds[0].rstrip('_')} must not be empty")
        extras = [k for k in ("map", "default") if k in self.model_fields_set]
        if extras and kinds[0] != "from_":
            raise problem(f"{' and '.join(extras)} only go with from")
        return self

    @property
    def kind(self) -> Literal["const", "from", "template"]:
        """Which form this spec uses."""
        return "from" if "from_" in self.model_fields_set else (
            "const" if "const" in self.model_fields_set else "template")

    @property
    def has_default(self) -> bool:
        """True when ``default`` was given (even as null)."""
        return "default" in self.model_fields_set


class TriggerSpec(BaseModel):
    """Source stages that relay a deal; empty means every stage."""

    model_config = _STRICT
    stages: tuple[str, ...] = ()


class ProductsSpec(BaseModel):
    """How product rows translate: catalog ids, what to do with unmapped ones, or not at all."""

    model_config = _STRICT
    ids: ProductIds = {}
    unmapped: Literal["free_text", "error"] = "free_text"
    enabled: bool = True


class DeletesSpec(BaseModel):
    """What deletions do: ``source`` — what ``ONCRMDEALDELETE`` from the source does to the target
    deal (``ignore``, ``comment`` on it, move it to ``stage``, ``delete`` it); ``target`` — a target deal
    deleted on the ESB: the job is ``dead`` (with the ``relay unlink`` hint) or the deal is ``recreate``d."""

    model_config = _STRICT
    source: Literal["ignore", "comment", "stage", "delete"] = "ignore"
    stage: str | None = None
    target: Literal["dead", "recreate"] = "dead"

    @model_validator(mode="after")
    def _stage_given(self) -> DeletesSpec:
        if self.source == "stage" and not self.stage:
            raise problem("source: stage needs stage: <target stage id>, e.g. C3:LOSE")
        return self


MatchRule = Literal["stamp", "phone", "email", "title"]


class RequisiteMatch(BaseModel):
    """``{requisite: RQ_INN}``: a target record whose requisite holds the same value is the same client."""

    model_config = _STRICT
    requisite: Annotated[str, _matching(re.compile(r"^RQ_[A-Z0-9_]+$"), "{!r} is not a requisite field (RQ_INN, "
                                                                          "RQ_EDRPOU, ...)")]


class RequisiteCopy(BaseModel):
    """Copy the source record's first requisite (these ``fields``) to a record the relay creates."""

    model_config = _STRICT
    preset_id: Annotated[int, Field(ge=1)]
    fields: tuple[Annotated[str, _matching(re.compile(r"^RQ_[A-Z0-9_]+$"), "{!r} is not a requisite field")], ...]


class ClientSpec(BaseModel):
    """How the deal's company (``company:``) or contacts (``contacts:``) are relayed with it.

    ``match``: how an existing target record is found before one is created — ``stamp`` (a record
    the relay created: ``ORIGINATOR_ID`` + ``ORIGIN_ID``), ``{requisite: RQ_INN}`` (tax id in the
    requisites), ``phone`` / ``email`` (``crm.duplicate.findbycomm``), ``title`` (companies: the exact
    title); ``on_match``: ``link`` (point the deal at it, never write to it), ``update`` (link and keep it
    equal to the source's), ``create`` (ignore the match), ``fail`` (the deal fails with the reason)."""

    model_config = _STRICT
    fields: dict[TargetField, FieldSpec]
    create_only: tuple[str, ...] = ()
    match: tuple[MatchRule | RequisiteMatch, ...] = ("stamp",)
    on_match: Literal["link", "update", "create", "fail"] = "link"
    requisite: RequisiteCopy | None = None

    @field_validator("create_only", "match", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return () if value is None else value

    @model_validator(mode="after")
    def _checks(self) -> ClientSpec:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for index, name in enumerate(self.create_only):
            if name not in self.fields:
                problems.append((("create_only", index), f"{name} is not a key of fields"))
        for name in ("ORIGINATOR_ID", "ORIGIN_ID"):
            if name in self.fields:
                problems.append((("fields", name), f"{name} is written by the relay (the record's stamp)"))
        raise_problems(problems, "ClientSpec")
        return self

    @property
    def rules(self) -> list[str]:
        """Match rules as text: ``stamp``, ``requisite:RQ_INN``, ``phone``…"""
        return [r if isinstance(r, str) else f"requisite:{r.requisite}" for r in self.match]


class MappingSpec(BaseModel):
    """One source portal's mapping file, validated."""

    model_config = _STRICT
    trigger: TriggerSpec = TriggerSpec()
    fields: dict[TargetField, FieldSpec]
    create_only: tuple[str, ...] = ()
    tables: dict[str, Table] = {}
    products: ProductsSpec = ProductsSpec()
    link_field: LinkField
    deletes: DeletesSpec = DeletesSpec()
    #: source fields that mark a deal another relay created here (e.g. the link field of a relay
    #: running the other way): a deal with any of them filled is never relayed back
    relayed_marks: tuple[SourceField, ...] = ()
    #: the deal's company and contacts travel with it (target ``COMPANY_ID`` / ``CONTACT_IDS``)
    company: ClientSpec | None = None
    contacts: ClientSpec | None = None
    #: file fields travel with the deal
    files: FilesSpec = FilesSpec()

    @field_validator("trigger", "products", "tables", "create_only", "deletes", "relayed_marks", "files",
                     mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return [] if info.field_name in ("create_only", "relayed_marks") else {}
        return value

    @model_validator(mode="after")
    def _cross_references(self) -> MappingSpec:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for index, name in enumerate(self.create_only):
            if name not in self.fields:
                problems.append((("create_only", index), f"{name} is not a key of fields"))
        sections: list[tuple[tuple[str, ...], dict[str, FieldSpec]]] = [((), dict(self.fields))]
        sections += [((part,), sect.fields) for part, sect in (("company", self.company),
                                                                ("contacts", self.contacts)) if sect]
        for where, fields in sections:
            for name, spec in fields.items():
                if isinstance(spec.map, str) and spec.map not in self.tables:
                    problems.append(((*where, "fields", name, "map"), f"no table {spec.map!r} in tables"))
        owned = {"COMPANY_ID": self.company, "CONTACT_ID": self.contacts, "CONTACT_IDS": self.contacts}
        for name, section in owned.items():
            if section is not None and name in self.fields:
                problems.append((("fields", name), f"{name} is filled by the relay from the "
                                 f"{'company' if name == 'COMPANY_ID' else 'contacts'} section; remove it"))
        pair = ("ORIGINATOR_ID", "ORIGIN_ID")
        for name in pair if self.link_field == "ORIGIN_ID" else (self.link_field,):
            if name in self.fields:
                problems.append((("fields", name), f"{name} is written by the relay "
                                 f"(link_field {self.link_field}); remove it from fields"))
        raise_problems(problems, "MappingSpec")
        return self

    def table_for(self, fs: FieldSpec) -> Mapping[str, str] | None:
        """The translation table a field spec uses (inline or named), or None."""
        return self.tables[fs.map] if isinstance(fs.map, str) else fs.map


@dataclass(frozen=True)
class TargetDeal:
    """A translated deal: non-empty fields for ``crm.deal.add``; for ``crm.deal.update`` all but
    ``create_only``, emptied ones as clears (:data:`CLEAR`); product rows (None: not relayed)."""

    fields: dict[str, Any]
    update_fields: dict[str, Any]
    rows: list[dict[str, Any]] | None


def load_mapping(path: Path, env: Mapping[str, str]) -> MappingSpec:
    """Load and validate a mapping file; ``ConfigError`` names file, key path and line."""
    return yamlconf.validate(MappingSpec, yamlconf.load_yaml(path, env))


# --- run time ------------------------------------------------------------------------------------


def relayed_mark(deal: Mapping[str, Any], spec: MappingSpec) -> str | None:
    """Why this source deal is itself a relay's copy (so it is not relayed back), or None:
    ``ORIGINATOR_ID`` ``b24relay:…`` (the ORIGIN_ID stamp) or a filled ``relayed_marks`` field."""
    originator = str(deal.get("ORIGINATOR_ID") or "")
    if originator.startswith("b24relay:"):
        return f"ORIGINATOR_ID {originator}"
    for name in spec.relayed_marks:
        value = deal.get(name)
        if value not in (None, "", [], False):
            return f"{name} is filled"
    return None


def in_trigger(deal: Mapping[str, Any], spec: MappingSpec) -> bool:
    """True when the deal's ``STAGE_ID`` is a trigger stage, or no stages are configured."""
    return not spec.trigger.stages or str(deal.get("STAGE_ID")) in spec.trigger.stages


def carries_manual(spec: MappingSpec) -> bool:
    """True when the source's ``IS_MANUAL_OPPORTUNITY`` is relayed without being mapped (docstring)."""
    return "OPPORTUNITY" in spec.fields and MANUAL not in spec.fields and spec.products.enabled


def transform(deal: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], spec: MappingSpec,
              source: Mapping[str, str]) -> TargetDeal:
    """Translate a source deal and its product rows; ``MappingError`` if a value has no mapping.

    ``fields`` (create) hold no empty values; ``update_fields`` clear them (:data:`CLEAR`)."""
    extra: dict[str, Any] = {}
    create_only = set(spec.create_only)
    if carries_manual(spec) and MANUAL in deal:
        extra[MANUAL] = "Y" if str(deal[MANUAL]).strip().upper() in ("Y", "1", "TRUE") else "N"
        if "OPPORTUNITY" in create_only:
            create_only.add(MANUAL)  # the amount is the target's after creation, so is its mode
    fields, update = map_fields(deal, spec.fields, create_only, spec, source, extra)
    target_rows = None
    if spec.products.enabled:
        target_rows = [_row(i, row, spec.products) for i, row in enumerate(rows or ())]
    return TargetDeal(fields=fields, update_fields=update, rows=target_rows)


class Tables(Protocol):
    """What resolves a field's ``map``: a deal mapping or a 1C mapping (their ``tables``)."""

    def table_for(self, fs: FieldSpec) -> Mapping[str, str] | None: ...


def map_fields(record: Mapping[str, Any], specs: Mapping[str, FieldSpec], create_only: Collection[str],
               spec: Tables, source: Mapping[str, str], extra: Mapping[str, Any] | None = None,
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A record's mapped fields: (create fields without empty values, update fields with clears).

    ``extra`` values are added as they are; a ``from`` field absent from the record is unknown and
    left out of the update."""
    values = {name: _field_value(name, fs, record, spec, source) for name, fs in specs.items()}
    values.update(extra or {})
    unknown = {name for name, fs in specs.items()
               if fs.kind == "from" and fs.from_ not in record and not fs.has_default}
    fields = {k: v for k, v in values.items() if not _is_empty(v)}
    update = {k: copy.deepcopy(v) if not _is_empty(v) else _clear(v)
              for k, v in values.items() if k not in create_only and k not in unknown}
    return fields, update


def fingerprint(target: TargetDeal) -> str:
    """Stable sha256 hex of ``update_fields`` + ``rows``; independent of dict key order."""
    content = {"fields": target.update_fields, "rows": target.rows}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def render(template: str, deal: Mapping[str, Any], source: Mapping[str, str]) -> str:
    """Fill a (valid) template: missing/null fields are empty, lists are joined with ", "."""
    out = []
    for is_ref, text in parse_template(template, "1c"):
        if not is_ref:
            out.append(text)
        elif text.startswith("source."):
            out.append(str(source.get(text[len("source."):], "")))
        else:
            out.append(_as_text(deal.get(text)))
    return "".join(out)


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_as_text(item) for item in value if not _is_empty(item))
    return "" if value is None else str(value)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _clear(empty: Any) -> Any:
    """The update value that empties a field whose source value is ``empty`` (module docstring)."""
    return list(CLEAR_MULTIPLE) if isinstance(empty, list) else CLEAR


def _field_value(name: str, fs: FieldSpec, deal: Mapping[str, Any], spec: Tables,
                 source: Mapping[str, str]) -> Any:
    if fs.kind == "const":
        return copy.deepcopy(fs.const)
    if fs.kind == "template":
        return render(fs.template or "", deal, source)
    value = deal.get(fs.from_ or "")
    if _is_empty(value):
        return copy.deepcopy(fs.default) if fs.has_default else copy.deepcopy(value)
    if fs.map is None:
        return copy.deepcopy(value)
    table = spec.table_for(fs) or {}
    if isinstance(value, list):
        return [_lookup(item, table, name, fs) for item in value]
    return _lookup(value, table, name, fs)


def _lookup(value: Any, table: Mapping[str, str], name: str, fs: FieldSpec) -> Any:
    if _is_empty(value):
        return value
    key = str(value)
    if key in table:
        return table[key]
    if fs.has_default:
        return copy.deepcopy(fs.default)
    which = f" (table {fs.map})" if isinstance(fs.map, str) else ""
    raise MappingError(f"{name}: source {fs.from_} value {key!r} is not in the map{which} "
                       "and there is no default")


def _product_key(value: Any) -> str | None:
    """``str(int(PRODUCT_ID))`` or None for 0, null and non-numbers (not from the catalog)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        try:
            number = int(float(value))  # "15.0"
        except (TypeError, ValueError, OverflowError):
            return None
    return str(number) if number else None


def _row(index: int, row: Mapping[str, Any], products: ProductsSpec) -> dict[str, Any]:
    key = _product_key(row.get("PRODUCT_ID"))
    if key is not None and key in products.ids:
        product_id = products.ids[key]
    elif products.unmapped == "error":
        raise MappingError(f"products: row {index + 1} ({row.get('PRODUCT_NAME')!r}) has "
                           f"PRODUCT_ID {row.get('PRODUCT_ID')!r}, which is not in products.ids "
                           "(products.unmapped is error)")
    else:
        product_id = 0
    out: dict[str, Any] = {"PRODUCT_ID": product_id}
    out.update({k: copy.deepcopy(row[k]) for k in ROW_KEYS if k in row})
    return out


def describe(spec: MappingSpec) -> list[str]:
    """Human summary of a mapping, one line per item, warnings last."""
    lines = [f"trigger: {', '.join(spec.trigger.stages) or 'all stages'}"]
    warnings = []
    for name, fs in spec.fields.items():
        how = f"= {fs.const!r}" if fs.kind == "const" else f"<- template {fs.template!r}"
        table = spec.table_for(fs)
        if fs.kind == "from":
            how = f"<- {fs.from_}"
            via = fs.map if isinstance(fs.map, str) else "map"
            how += "" if table is None else f" via {via} ({len(table)} values)"
            how += f", default {fs.default!r}" if fs.has_default else ""
        lines.append(f"{name} {how}" + (" [create only]" if name in spec.create_only else ""))
        if fs.from_ == "STAGE_ID" and table is not None and not fs.has_default:
            missing = [stage for stage in spec.trigger.stages if stage not in table]
            if missing:
                stages = ", ".join(missing)
                warnings.append(f"warning: {name}: trigger stages not in its map: {stages}")
    if carries_manual(spec):
        lines.append(f"{MANUAL} <- {MANUAL} (automatic: OPPORTUNITY is written and rows are relayed)"
                     + (" [create only]" if "OPPORTUNITY" in spec.create_only else ""))
    p = spec.products
    lines.append(f"products: {len(p.ids)} catalog ids mapped, unmapped -> {p.unmapped}"
                 if p.enabled else "products: not relayed")
    for name, sect in (("company", spec.company), ("contacts", spec.contacts)):
        if sect is not None:
            lines.append(f"{name}: {', '.join(sect.fields)}; match {', '.join(sect.rules) or 'nothing'}, "
                         f"on match: {sect.on_match}")
    if spec.files.fields:
        lines.append("files: " + ", ".join(f"{t} <- {s}" for t, s in spec.files.fields.items())
                     + f" (at most {spec.files.max_bytes} bytes a file)")
    return [*lines, f"link_field: {spec.link_field}", *warnings]
