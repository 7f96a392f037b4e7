"""Pure: check a deal mapping against the facts of its source and target portals.

Every reference in the mapping is looked up where it must exist: target fields exist and are
writable; mapped stages exist on the target in the funnel the mapping puts the deal in; enumeration
item ids exist (keys on the source field, values on the target field); users exist and are active;
catalog products exist; requisite presets exist; the link field exists; trigger stages exist on
the source; target fields the portal requires are filled.  Each :class:`Finding` names the mapping
file and line and, where one can be found, the right value: the target stage or list item with the
same name, the target user with the same e-mail, the target product with the same ``XML_ID`` or name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.mapping.deal import ClientSpec, FieldSpec, MappingSpec, parse_template
from relay.mapping.facts import FieldFacts, PortalFacts
from relay.mapping.onec import OneCMappingSpec

#: target fields the relay fills itself (never required of the mapping)
_RELAY_FILLS = frozenset({"ORIGINATOR_ID", "ORIGIN_ID", "COMPANY_ID", "CONTACT_ID", "CONTACT_IDS"})
#: key path -> line, keys as text
Lines = Mapping[tuple[str, ...], int]


@dataclass(frozen=True)
class Finding:
    """One problem of a mapping: where, what, and the value that would fix it (if one is known)."""

    path: Path
    line: int | None
    key: str
    message: str
    suggestion: str = ""
    fixable: bool = False  # `relay mapping check --fix` can repair it (the link field)

    def text(self) -> str:
        """``file:line: key: message; suggestion``."""
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.key}: {self.message}" + (f"; {self.suggestion}" if self.suggestion else "")

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for the database and the web page)."""
        return {"file": str(self.path), "line": self.line, "key": self.key, "message": self.message,
                "suggestion": self.suggestion, "fixable": self.fixable}


def text_lines(raw: Mapping[tuple[Any, ...], int]) -> dict[tuple[str, ...], int]:
    """``LoadedYaml.lines`` with every key as text (YAML keys like ``79`` come as ints)."""
    return {tuple(str(k) for k in key): line for key, line in raw.items()}


def _key(path: Sequence[str]) -> str:
    out = ""
    for part in path:
        plain = part.replace("_", "").isalnum()
        out += (f".{part}" if out else part) if plain else f'["{part}"]'
    return out


class _Checker:
    def __init__(self, spec: MappingSpec | OneCMappingSpec, path: Path, lines: Lines, source: PortalFacts,
                 target: PortalFacts):
        self.spec, self.path, self.lines = spec, path, lines
        self.src, self.tgt = source, target
        self.found: list[Finding] = []
        #: the field specs of the section being checked (its CATEGORY_ID places the deal in a funnel)
        self.section: Mapping[str, FieldSpec] = spec.fields if isinstance(spec, MappingSpec) else {}
        self.base: tuple[str, ...] = ()

    def add(self, where: Sequence[str], message: str, suggestion: str = "", *, fixable: bool = False) -> None:
        line = None
        for end in range(len(where), -1, -1):
            line = self.lines.get(tuple(where[:end]))
            if line is not None:
                break
        self.found.append(Finding(self.path, line, _key(where), message, suggestion, fixable))

    # --- where a field spec's values live ------------------------------------------------------

    def values(self, base: Sequence[str], fs: FieldSpec) -> Iterable[tuple[tuple[str, ...], str, str | None]]:
        """(key path, target value, source value it translates or None) of a spec's fixed values."""
        if fs.kind == "const" and fs.const not in (None, ""):
            for item in fs.const if isinstance(fs.const, list) else [fs.const]:
                yield (*base, "const"), str(item), None
        if fs.has_default and fs.default not in (None, ""):
            yield (*base, "default"), str(fs.default), None
        table = self.spec.table_for(fs)
        if table:
            where = ("tables", fs.map) if isinstance(fs.map, str) else (*base, "map")
            for key, value in table.items():
                yield (*where, key), value, key

    # --- the checks ----------------------------------------------------------------------------

    def run(self) -> list[Finding]:
        assert isinstance(self.spec, MappingSpec)
        self.trigger()
        self.deal_fields()
        self.link_field()
        self.required()
        self.products()
        self.deletes()
        for part, section in (("company", self.spec.company), ("contacts", self.spec.contacts)):
            if section is not None:
                self.client(part, section)
        return self.found

    def run_onec(self) -> list[Finding]:
        """A 1C mapping: its target side (1C itself has nothing to read)."""
        assert isinstance(self.spec, OneCMappingSpec)
        for part in ("incoming", "outgoing"):
            doc = getattr(self.spec, part)
            if doc is None:
                continue
            self.section, self.base = doc.fields, (part,)
            if doc.target == "deal":
                self.deal_fields()
                if doc.deletes.policy == "stage" and doc.deletes.stage and self.tgt.stages \
                        and doc.deletes.stage not in self.tgt.stages:
                    self.add((part, "deletes", "stage"), f"stage {doc.deletes.stage} does not exist on the target",
                             _closest(doc.deletes.stage, {k: s.name for k, s in self.tgt.stages.items()}))
            self.product_ids((part, "products", "ids"), {k: str(v) for k, v in doc.products.ids.items()})
        if self.spec.clients is not None:
            self.client("clients", self.spec.clients)
        return self.found

    def trigger(self) -> None:
        assert isinstance(self.spec, MappingSpec)
        for n, stage in enumerate(self.spec.trigger.stages):
            if self.src.stages and stage not in self.src.stages:
                self.add(("trigger", "stages", str(n)), f"stage {stage} does not exist on the source",
                         _closest(stage, {k: s.name for k, s in self.src.stages.items()}))

    def deal_fields(self) -> None:
        for name, fs in self.section.items():
            where = (*self.base, "fields", name)
            facts = self.tgt.deal_fields.get(name)
            if facts is None:
                if self.tgt.deal_fields:
                    self.add(where, f"the target has no deal field {name}",
                             _closest(name, {k: f.label for k, f in self.tgt.deal_fields.items()}))
                continue
            if facts.read_only:
                self.add(where, f"{name} ({facts.label}) is read-only on the target; remove it from fields")
                continue
            self.source_refs(where, fs, self.src.deal_fields)
            if name == "STAGE_ID":
                self.stages(where, fs)
            elif name == "CATEGORY_ID":
                self.funnels(where, fs)
            else:
                self.typed(where, fs, facts, self.src.deal_fields.get(fs.from_ or ""))

    def source_refs(self, where: Sequence[str], fs: FieldSpec, fields: Mapping[str, FieldFacts]) -> None:
        """The source fields a spec reads exist on the source."""
        if not fields:
            return
        names = [(("from",), fs.from_)] if fs.kind == "from" and fs.from_ else []
        if fs.kind == "template" and fs.template:
            names += [(("template",), ref) for is_ref, ref in parse_template(fs.template) if is_ref
                      and not ref.startswith("source.")]
        for sub, ref in names:
            if ref is not None and ref not in fields:
                self.add((*where, *sub), f"the source has no field {ref}",
                         _closest(ref, {k: f.label for k, f in fields.items()}))

    def target_funnels(self) -> set[str]:
        """Funnels the mapping can put a deal in (``CATEGORY_ID`` const / map values; else the default)."""
        fs = self.section.get("CATEGORY_ID")
        if fs is None:
            return {"0"} if "0" in self.tgt.funnels or not self.tgt.funnels else {min(self.tgt.funnels, key=int)}
        return {value for _w, value, _k in self.values((*self.base, "fields", "CATEGORY_ID"), fs)} \
            or set(self.tgt.funnels)

    def funnel_for(self, source_stage: str | None) -> set[str]:
        """The target funnel(s) a deal in ``source_stage`` lands in."""
        fs = self.section.get("CATEGORY_ID")
        table = self.spec.table_for(fs) if fs is not None else None
        src = self.src.stages.get(source_stage or "")
        if fs is not None and fs.kind == "from" and table and src is not None and src.category in table:
            return {table[src.category]}
        return self.target_funnels()

    def funnels(self, where: Sequence[str], fs: FieldSpec) -> None:
        for path, value, key in self.values(where, fs):
            if self.tgt.funnels and value not in self.tgt.funnels:
                name = self.src.funnels.get(key or "", "")
                self.add(path, f"funnel {value} does not exist on the target",
                         _by_name(name, self.tgt.funnels, "funnel") or _listing(self.tgt.funnels))
            if key is not None and self.src.funnels and key not in self.src.funnels:
                self.add(path, f"funnel {key} does not exist on the source", _listing(self.src.funnels))

    def stages(self, where: Sequence[str], fs: FieldSpec) -> None:
        if not self.tgt.stages:
            return
        for path, value, key in self.values(where, fs):
            funnels = self.funnel_for(key)
            stage = self.tgt.stages.get(value)
            in_funnel = {k: s.name for k, s in self.tgt.stages.items() if s.category in funnels}
            src_name = self.src.stages[key].name if key in self.src.stages else ""
            if stage is None or stage.category not in funnels:
                what = (f"stage {value} does not exist on the target" if stage is None else
                        f"stage {value} belongs to target funnel {stage.category}, not to "
                        + " or ".join(sorted(funnels)))
                self.add(path, what, _by_name(src_name, in_funnel, "stage") or _closest(value, in_funnel)
                         or _listing(in_funnel))
            if key is not None and self.src.stages and key not in self.src.stages:
                self.add(path, f"stage {key} does not exist on the source",
                         _closest(key, {k: s.name for k, s in self.src.stages.items()}))

    def typed(self, where: Sequence[str], fs: FieldSpec, facts: FieldFacts, source: FieldFacts | None) -> None:
        """List items and users of one target field."""
        if facts.type == "enumeration":
            for path, value, key in self.values(where, fs):
                if value not in facts.items:
                    text = source.items.get(key or "", "") if source is not None else ""
                    self.add(path, f"list item {value} does not exist in target field {facts.name} ({facts.label})",
                             _by_name(text, facts.items, "list item") or _listing(facts.items))
                if key is not None and source is not None and source.items and key not in source.items:
                    self.add(path, f"list item {key} does not exist in source field {source.name} ({source.label})",
                             _listing(source.items))
        elif facts.type == "user":
            self.users(where, fs)

    def users(self, where: Sequence[str], fs: FieldSpec) -> None:
        if not self.tgt.users:
            return
        for path, value, key in self.values(where, fs):
            user = self.tgt.users.get(value)
            if user is None or not user.active:
                what = (f"user {value} does not exist on the target" if user is None else
                        f"user {value} ({user.name}) is not active on the target")
                self.add(path, what, self.same_user(key))
            if key is not None and self.src.users and key not in self.src.users:
                self.add(path, f"user {key} does not exist on the source")

    def same_user(self, source_id: str | None) -> str:
        src = self.src.users.get(source_id or "")
        if src is None or not src.email:
            return ""
        for user in self.tgt.users.values():
            if user.email == src.email and user.active:
                return f"use {user.id} ({user.name}, same e-mail {user.email})"
        return ""

    def link_field(self) -> None:
        assert isinstance(self.spec, MappingSpec)
        name = self.spec.link_field
        if self.tgt.deal_fields and name not in self.tgt.deal_fields:
            self.add(("link_field",), f"the target has no deal field {name}",
                     "create it with `relay mapping check --fix` (a string field)", fixable=True)

    def required(self) -> None:
        assert isinstance(self.spec, MappingSpec)
        filled = set(self.spec.fields) | _RELAY_FILLS | {self.spec.link_field}
        for name, facts in self.tgt.deal_fields.items():
            if facts.required and not facts.read_only and name not in filled:
                self.add(("fields",), f"the target requires {name} ({facts.label}) and the mapping does not fill it",
                         f"add fields.{name}")

    def products(self) -> None:
        assert isinstance(self.spec, MappingSpec)
        if self.spec.products.enabled:
            self.product_ids(("products", "ids"), {k: str(v) for k, v in self.spec.products.ids.items()})

    def product_ids(self, where: tuple[str, ...], ids: Mapping[str, str]) -> None:
        """Catalog ids: values on the target; keys on the source (when the source has a catalog)."""
        for key, target in ids.items():
            path = (*where, key)
            if target not in self.tgt.products and "products" not in self.tgt.unread:
                name, xml = self.src.products.get(key, ("", ""))
                self.add(path, f"product {target} does not exist in the target catalog",
                         self.same_product(name, xml))
            if self.src.products and key not in self.src.products and "products" not in self.src.unread:
                self.add(path, f"product {key} does not exist in the source catalog")

    def same_product(self, name: str, xml_id: str) -> str:
        for pid, (tname, txml) in self.tgt.products.items():
            if xml_id and txml == xml_id:
                return f"use {pid} ({tname}, same XML_ID)"
        for pid, (tname, _x) in self.tgt.products.items():
            if name and tname.casefold() == name.casefold():
                return f"use {pid} (same name «{tname}»)"
        return ""

    def deletes(self) -> None:
        assert isinstance(self.spec, MappingSpec)
        stage = self.spec.deletes.stage
        if self.spec.deletes.source == "stage" and stage and self.tgt.stages and stage not in self.tgt.stages:
            self.add(("deletes", "stage"), f"stage {stage} does not exist on the target",
                     _closest(stage, {k: s.name for k, s in self.tgt.stages.items()}))

    def client(self, part: str, section: ClientSpec) -> None:
        fields = self.tgt.contact_fields if part == "contacts" else self.tgt.company_fields
        source = self.src.contact_fields if part == "contacts" else self.src.company_fields
        for name, fs in section.fields.items():
            where = (part, "fields", name)
            facts = fields.get(name)
            if facts is None:
                if fields:
                    self.add(where, f"the target has no {part} field {name}",
                             _closest(name, {k: f.label for k, f in fields.items()}))
                continue
            if facts.read_only:
                self.add(where, f"{name} ({facts.label}) is read-only on the target; remove it")
                continue
            self.source_refs(where, fs, source)
            self.typed(where, fs, facts, source.get(fs.from_ or ""))
        if section.requisite is not None and self.tgt.presets:
            preset = str(section.requisite.preset_id)
            if preset not in self.tgt.presets:
                self.add((part, "requisite", "preset_id"), f"requisite preset {preset} does not exist on the target",
                         _listing(self.tgt.presets))


def _by_name(name: str, options: Mapping[str, str], what: str) -> str:
    """``use X («name»)`` for the option whose text equals ``name`` (case-insensitive)."""
    if not name:
        return ""
    for key, text in options.items():
        if text.casefold() == name.casefold():
            return f"use {key} (the {what} named «{text}»)"
    return ""


def _closest(value: str, options: Mapping[str, str]) -> str:
    """``did you mean X («label»)?`` by id, else by label; else nothing."""
    hit = difflib.get_close_matches(value, list(options), n=1, cutoff=0.6)
    if not hit:
        by_label = {text.casefold(): key for key, text in options.items() if text}
        near = difflib.get_close_matches(value.casefold(), list(by_label), n=1, cutoff=0.6)
        hit = [by_label[near[0]]] if near else []
    return f"did you mean {hit[0]} («{options[hit[0]]}»)?" if hit else ""


def _listing(options: Mapping[str, str], limit: int = 12) -> str:
    if not options:
        return ""
    shown = ", ".join(f"{k} «{v}»" for k, v in list(options.items())[:limit])
    return f"choose one of {shown}" + (" …" if len(options) > limit else "")


def check_mapping(spec: MappingSpec, path: Path, lines: Lines, source: PortalFacts,
                  target: PortalFacts) -> list[Finding]:
    """Every finding of ``spec`` (file ``path``, key lines ``lines``) against the two portals' facts."""
    return _Checker(spec, path, lines, source, target).run()


def check_onec_mapping(spec: OneCMappingSpec, path: Path, lines: Lines, target: PortalFacts) -> list[Finding]:
    """Every finding of a 1C mapping against the target portal's facts."""
    return _Checker(spec, path, lines, PortalFacts(), target).run_onec()


def referenced_products(spec: MappingSpec | OneCMappingSpec) -> tuple[set[str], set[str]]:
    """(source ids, target ids) of the catalog products a mapping names."""
    if isinstance(spec, MappingSpec):
        return set(spec.products.ids), {str(v) for v in spec.products.ids.values()}
    docs = [d for d in (spec.incoming, spec.outgoing) if d is not None]
    return set(), {str(v) for d in docs for v in d.products.ids.values()}
