"""Check a source's mapping against both live portals (``relay mapping check``), and repair the link field.

Reads the facts of the source and the target (:mod:`relay.sync.facts`, through the portals' pacers),
then runs the pure :func:`relay.mapping.check.check_mapping`.  ``--fix`` creates a missing link field
on the target with ``crm.deal.userfield.add`` (``FIELD_NAME`` without the ``UF_CRM_`` prefix, at most 20
characters with it, ``USER_TYPE_ID`` ``string`` —
``api-reference/crm/deals/user-defined-fields/crm-deal-userfield-add.md``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay import yamlconf
from relay.config import RelayConfig
from relay.errors import RelayError
from relay.mapping.check import Finding, check_mapping, check_onec_mapping, referenced_products, text_lines
from relay.mapping.facts import PortalFacts
from relay.portal.client import PortalClient
from relay.sync.facts import read_facts

Say = Callable[[str], None]


@dataclass
class CheckReport:
    """The result of checking one source's mapping."""

    source_id: str
    path: Path
    findings: list[Finding] = field(default_factory=list)
    error: str = ""  # a portal could not be read
    checked_at: float = field(default_factory=time.time)

    @property
    def clean(self) -> bool:
        """No finding and no read error."""
        return not self.findings and not self.error

    def as_dict(self) -> dict[str, Any]:
        """Plain data (stored for the web page)."""
        return {"source": self.source_id, "file": str(self.path), "checked_at": self.checked_at,
                "error": self.error, "findings": [f.as_dict() for f in self.findings]}


def mapping_path(config: RelayConfig, source_id: str) -> Path:
    """Where a source's (or 1C base's) mapping file is (relative paths are relative to ``relay.yaml``)."""
    src = config.source(source_id) or config.onec_base(source_id)
    if src is None:
        raise KeyError(source_id)
    return src.mapping if src.mapping.is_absolute() else config.path.parent / src.mapping


def check_onec(config: RelayConfig, env: Mapping[str, str], base_id: str, target: PortalClient,
               say: Say | None = None) -> CheckReport:
    """Check one 1C base's mapping against the target's facts (1C has nothing to read)."""
    path = mapping_path(config, base_id)
    report = CheckReport(base_id, path)
    spec = config.onec_mappings[base_id]
    lines = text_lines(yamlconf.load_yaml(path, env).lines)
    try:
        (say or (lambda _t: None))(f"{base_id}: reading the target portal")
        tgt = read_facts(target, products=referenced_products(spec)[1], progress=say)
    except RelayError as exc:
        report.error = f"could not read the target portal: {exc}"
        return report
    report.findings = check_onec_mapping(spec, path, lines, tgt) + _unread(path, "target", tgt)
    return report


def check_source(config: RelayConfig, env: Mapping[str, str], source_id: str, source: PortalClient,
                 target: PortalClient, say: Say | None = None) -> CheckReport:
    """Check one source's mapping against the facts of its portal and of the target."""
    path = mapping_path(config, source_id)
    report = CheckReport(source_id, path)
    spec = config.mappings[source_id]
    lines = text_lines(yamlconf.load_yaml(path, env).lines)
    src_ids, tgt_ids = referenced_products(spec)
    progress = say or (lambda _t: None)
    try:
        progress(f"{source_id}: reading the source portal")
        src = read_facts(source, products=src_ids, progress=progress)
        progress(f"{source_id}: reading the target portal")
        tgt = read_facts(target, products=tgt_ids, progress=progress)
    except RelayError as exc:
        report.error = f"could not read the portals: {exc}"
        return report
    report.findings = check_mapping(spec, path, lines, src, tgt)
    report.findings += _unread(path, "source", src) + _unread(path, "target", tgt)
    return report


def _unread(path: Path, side: str, facts: PortalFacts) -> list[Finding]:
    return [Finding(path, None, side, f"could not read {what}: {why}") for what, why in facts.unread.items()]


def fix_link_field(target: PortalClient, name: str) -> str:
    """Create the string field ``name`` (``UF_CRM_…``) on the target; what was done, as a sentence."""
    code = name.removeprefix("UF_CRM_")
    if not name.startswith("UF_CRM_") or len(name) > 20:
        return (f"cannot create {name}: a custom field code is UF_CRM_ plus at most 13 characters "
                "(crm-deal-userfield-add.md); rename link_field")
    field_id = target.call("crm.deal.userfield.add", {"fields": {
        "FIELD_NAME": code, "USER_TYPE_ID": "string", "LABEL": "b24relay: source deal",
        "XML_ID": "b24relay_link", "SHOW_FILTER": "Y"}}, write=True)
    return f"created target deal field {name} (custom field id {field_id})"

