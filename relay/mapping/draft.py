"""Pure: draft a deal mapping by matching two portals' facts (``relay mapping init``).

Matches fields by code and then by label, funnels and stages by name, list items by text, users by
e-mail, catalog products by ``XML_ID`` and then by name.  What it cannot match is written as a
commented ``# TODO`` line naming what is missing, so the draft loads as it is and the integrator
fills the gaps.  The result passes :mod:`relay.mapping.check` by construction: every value it
writes was read from the portals.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from relay.mapping.facts import FieldFacts, PortalFacts

#: standard deal fields copied when both portals have them with the same type
_PLAIN_TYPES = frozenset({"string", "double", "integer", "char", "date", "datetime", "crm_currency"})
#: fields the draft never copies as plain values: ids, stamps, links, stage/funnel (mapped apart), computed
_NOT_COPIED = frozenset({
    "ID", "ORIGINATOR_ID", "ORIGIN_ID", "COMPANY_ID", "CONTACT_ID", "CONTACT_IDS", "LEAD_ID", "QUOTE_ID",
    "STAGE_ID", "CATEGORY_ID", "CLOSED", "LOCATION_ID", "STAGE_SEMANTIC_ID", "IS_NEW", "IS_RECURRING",
})
_USER_TYPES = frozenset({"user", "employee"})


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def _note(text: str) -> str:
    return " ".join(text.split())[:120]


@dataclass
class _Draft:
    source: PortalFacts
    target: PortalFacts
    out: list[str] = field(default_factory=list)
    todo: int = 0

    def line(self, text: str = "") -> None:
        self.out.append(text)

    def todo_line(self, text: str) -> None:
        self.todo += 1
        self.out.append(text)


def _by_label(fields: Mapping[str, FieldFacts], label: str) -> FieldFacts | None:
    wanted = label.casefold().strip()
    for f in fields.values():
        if f.name.startswith("UF_CRM_") and f.label.casefold().strip() == wanted:
            return f
    return None


def _match_items(d: _Draft, src: FieldFacts, tgt: FieldFacts, indent: str) -> None:
    by_text = {text.casefold().strip(): item for item, text in tgt.items.items()}
    d.line(f"{indent}map:")
    for item, text in src.items.items():
        hit = by_text.get(text.casefold().strip())
        if hit is not None:
            d.line(f"{indent}  {_q(item)}: {_q(hit)}    # {_note(text)}")
        else:
            d.todo_line(f"{indent}  # TODO {_q(item)}: \"\"    # «{_note(text)}»: no item with this text in "
                        f"{tgt.name}")


def _funnels(d: _Draft) -> dict[str, str]:
    """Source funnel id -> target funnel id, by name."""
    by_name = {name.casefold().strip(): cid for cid, name in d.target.funnels.items()}
    return {cid: by_name[name.casefold().strip()] for cid, name in d.source.funnels.items()
            if name.casefold().strip() in by_name}


def _stage_section(d: _Draft, funnels: Mapping[str, str]) -> None:
    d.line("  CATEGORY_ID:                      # funnels matched by name")
    d.line("    from: CATEGORY_ID")
    d.line("    map:")
    for cid, name in d.source.funnels.items():
        if cid in funnels:
            d.line(f"      {_q(cid)}: {_q(funnels[cid])}    # «{_note(name)}»")
        else:
            d.todo_line(f"      # TODO {_q(cid)}: \"\"    # «{_note(name)}»: no target funnel with this name "
                        f"(target: {', '.join(f'{k} «{v}»' for k, v in d.target.funnels.items())})")
    d.line("  STAGE_ID:                         # stages matched by name within the matched funnel")
    d.line("    from: STAGE_ID")
    d.line("    map:")
    for sid, stage in d.source.stages.items():
        tfunnel = funnels.get(stage.category)
        options = d.target.stages_of(tfunnel) if tfunnel is not None else {}
        hit = next((k for k, s in options.items() if s.name.casefold().strip() == stage.name.casefold().strip()), None)
        if hit is not None:
            d.line(f"      {_q(sid)}: {_q(hit)}    # «{_note(stage.name)}»")
        else:
            where = f"target funnel {tfunnel}" if tfunnel is not None else "a matched target funnel"
            d.todo_line(f"      # TODO {_q(sid)}: \"\"    # «{_note(stage.name)}»: no stage with this name in {where}")


def _users(d: _Draft) -> list[str]:
    """The ``tables.users`` block."""
    by_email = {u.email: u for u in d.target.users.values() if u.email and u.active}
    lines = ["  users:                            # source user id -> target user id (matched by e-mail)"]
    for uid, user in d.source.users.items():
        hit = by_email.get(user.email) if user.email else None
        if hit is not None:
            lines.append(f"    {_q(uid)}: {_q(hit.id)}    # {_note(user.name)} <{user.email}>")
        else:
            d.todo += 1
            lines.append(f"    # TODO {_q(uid)}: \"\"    # {_note(user.name)} <{user.email}>: no active target "
                         "user with this e-mail")
    return lines


def _products(d: _Draft) -> list[str]:
    by_xml = {xml: pid for pid, (_n, xml) in d.target.products.items() if xml}
    by_name = {name.casefold().strip(): pid for pid, (name, _x) in d.target.products.items() if name}
    lines = ["products:", "  ids:                              # source catalog id -> target catalog id"]
    for pid, (name, xml) in d.source.products.items():
        hit, how = (by_xml.get(xml), "same XML_ID") if xml and xml in by_xml else (
            by_name.get(name.casefold().strip()), "same name")
        if hit is not None:
            lines.append(f"    {_q(pid)}: {_q(hit)}    # {_note(name)} ({how})")
        else:
            d.todo += 1
            lines.append(f"    # TODO {_q(pid)}: \"\"    # {_note(name)}: not in the target catalog "
                         "(sent as a free-text row)")
    if len(lines) == 2:
        lines[1] = "  ids: {}"
    lines.append("  unmapped: free_text               # products not in ids go as free-text rows (or: error)")
    return lines


def _fields(d: _Draft) -> list[str]:
    """Target fields in ``create_only`` (immutable ones)."""
    src, tgt = d.source.deal_fields, d.target.deal_fields
    create_only = ["CATEGORY_ID", "STAGE_ID"]
    d.line("fields:                             # target field: how to fill it from the source deal")
    for name, f in tgt.items():
        if name in _NOT_COPIED or f.read_only or name.startswith("UF_CRM_"):
            continue
        s = src.get(name)
        if f.type in _USER_TYPES and s is not None:
            default = d.target.current_user
            extra = f", default: {_q(default)}" if default else ""
            d.line(f"  {name}: {{from: {name}, map: users{extra}}}    # «{_note(f.label)}»"
                   + (f"; unmatched users: target user {default} (the relay's own user)" if default else ""))
        elif s is not None and f.type in _PLAIN_TYPES and s.type == f.type:
            d.line(f"  {name}: {name}    # «{_note(f.label)}»")
            if f.immutable and name not in create_only:
                create_only.append(name)
        elif f.required:
            d.todo_line(f"  # TODO {name}:    # «{_note(f.label)}» is REQUIRED on the target; fill it "
                        "(e.g. {const: ...})")
    _stage_section(d, _funnels(d))
    for name, f in tgt.items():
        if name.startswith("UF_CRM_") and not f.read_only:
            _custom(d, name, f)
    return create_only


def _custom(d: _Draft, name: str, f: FieldFacts) -> None:
    src = d.source.deal_fields.get(name)
    how = "same code"
    if src is None:
        src, how = _by_label(d.source.deal_fields, f.label), "same label"
    required = " REQUIRED on the target;" if f.required else ""
    if src is None:
        d.todo_line(f"  # TODO {name}:    # «{_note(f.label)}» ({f.type}):{required} no source field with this "
                    "code or label")
        return
    if f.type == "file":
        d.todo_line(f"  # TODO {name}: files travel in the files: section (files: {{fields: {{{name}: {src.name}}}}})")
        return
    if f.type == "enumeration" and src.type == "enumeration":
        d.line(f"  {name}:    # «{_note(f.label)}» <- {src.name} «{_note(src.label)}» ({how}); items by text")
        d.line(f"    from: {src.name}")
        _match_items(d, src, f, "    ")
    elif f.type in _USER_TYPES and src.type in _USER_TYPES:
        d.line(f"  {name}: {{from: {src.name}, map: users}}    # «{_note(f.label)}» ({how})")
    elif f.type == src.type:
        d.line(f"  {name}: {src.name}    # «{_note(f.label)}» ({how})")
    else:
        d.todo_line(f"  # TODO {name}: {src.name}    # «{_note(f.label)}»: types differ (target {f.type}, "
                    f"source {src.type}); translate with map: or a template")


def draft_mapping(source_id: str, source: PortalFacts, target: PortalFacts, *, written: str = "") -> tuple[str, int]:
    """The draft mapping file's text and the number of ``# TODO`` lines in it."""
    d = _Draft(source, target)
    d.line(f"# Draft mapping of source {source_id!r} ({source.domain}) -> target {target.domain},")
    d.line(f"# written by `relay mapping init`{' on ' + written if written else ''} by matching both portals.")
    d.line("# Lines starting with '# TODO' could not be matched: fill them in (and uncomment) or delete them,")
    d.line(f"# then run `relay mapping check --source {source_id}`.")
    d.line()
    d.line("trigger:")
    d.line("  stages: []                        # relay deals only in these source stages (empty: every stage)")
    for sid, stage in source.stages.items():
        funnel = _note(source.funnels.get(stage.category, ""))
        d.line(f"  #   {sid}: «{_note(stage.name)}» (funnel {stage.category} «{funnel}»)")
    d.line()
    create_only = _fields(d)
    d.line()
    d.line(f"create_only: [{', '.join(create_only)}]    # set once on create; remove STAGE_ID to follow the "
           "source's stage")
    d.line()
    d.line("tables:")
    d.out += _users(d)
    d.line()
    d.out += _products(d)
    d.line()
    d.line("link_field: ORIGIN_ID               # or a string field UF_CRM_… (`relay mapping check --fix` creates it)")
    d.line("# company: and contacts: sections relay the deal's company and contacts: see the README.")
    return "\n".join(d.out) + "\n", d.todo
