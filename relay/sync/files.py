"""Edge: a deal's files travel with it — read the source's file links, download, upload to the target.

* **Read**: one ``crm.item.get`` (``entityTypeId`` 2, ``useOriginalUfNames`` ``Y``) gives each file as
  ``{"id", "url", "urlMachine"}`` (a list of them for a multiple field); the links ``crm.deal.get`` gives
  need a browser session — ``api-reference/crm/universal/crm-item-get.md``,
  ``api-reference/files/how-to-update-files.md``, ``bitrix24-protocol.md`` §5.11.
* **Download**: ``urlMachine`` with a plain GET, from the source portal's own host only, never logged
  (:meth:`~relay.portal.client.PortalClient.download`); the name comes from ``Content-Disposition``.
* **Write**: one ``crm.deal.update``, never inside ``batch`` (``settings/how-to-call-rest-api/batch.md``):
  ``{"fileData": [name, base64]}`` for a single field, a list of them for a multiple field —
  ``api-reference/files/how-to-upload-files.md`` ("How to Choose a Transfer Format").  ``crm.deal.update``
  is not in the table of ``how-to-update-files.md`` ("How Methods Handle Files"), so the general rule
  holds: a single field is replaced by the new file and a multiple field is set by the request as a
  whole — sending only the source's files leaves exactly them.  (The docs call file writes through
  ``crm.deal.update`` "not recommended"; ``crm.item.update`` follows the same keep/delete rule.)  A field
  the source emptied is cleared with ``""`` (single) or ``[]`` (multiple) — ``crm-item-update.md``
  ("How to Update a File Type Custom Field").  Whether a target field is multiple, and that it is a
  ``file`` field at all, comes from ``crm.deal.fields`` (``isMultiple``, ``type``).
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from relay.errors import MappingError, TargetMisconfigured
from relay.mapping.files import FilesSpec
from relay.portal.client import PortalClient

log = logging.getLogger(__name__)

_NAME_STAR = re.compile(r"""filename\*\s*=\s*([^';\s]*)'[^']*'([^;\s]+)""", re.IGNORECASE)
_NAME = re.compile(r"""filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))""", re.IGNORECASE)


@dataclass(frozen=True)
class Skipped:
    """A source file that was not sent, and why (e.g. "over the 10 MiB limit")."""

    field: str
    name: str
    size: int | None
    reason: str


@dataclass(frozen=True)
class Sent:
    """The names of the files sent to one target field."""

    field: str
    names: list[str]


@dataclass(frozen=True)
class _Link:
    file_id: str
    url: str


def file_name(disposition: str, file_id: str) -> str:
    """The file name a ``Content-Disposition`` header gives (``filename*`` first), without any path;
    ``file-<id>`` when it gives none."""
    star, plain = _NAME_STAR.search(disposition), _NAME.search(disposition)
    if star:
        name = unquote(star.group(2), encoding=star.group(1) or "utf-8", errors="replace")
    elif plain:
        name = re.sub(r"\\(.)", r"\1", plain.group(1)) if plain.group(1) is not None else plain.group(2)
    else:
        name = ""
    name = "".join(c for c in name.replace("\\", "/").rsplit("/", 1)[-1] if c.isprintable()).strip()
    return name[:255] if name not in ("", ".", "..") else f"file-{file_id}"


def limit_text(size: int) -> str:
    """``10 MiB``, ``512 KiB`` or ``1000 bytes``."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def _multiple(target: PortalClient, fields: list[str]) -> dict[str, bool]:
    """``isMultiple`` of each target field; TargetMisconfigured when one is missing or not a file field."""
    described = target.call("crm.deal.fields")
    out: dict[str, bool] = {}
    for name in fields:
        desc = described.get(name) if isinstance(described, Mapping) else None
        if not isinstance(desc, Mapping) or desc.get("type") != "file":
            raise TargetMisconfigured(f"the target portal has no deal field {name} of type file (files.fields of "
                                      "the mapping): create it (crm.deal.userfield.add, USER_TYPE_ID file)")
        out[name] = bool(desc.get("isMultiple"))
    return out


def _links(source: PortalClient, deal_id: str, spec: FilesSpec, fields: list[str]) -> dict[str, list[_Link]]:
    """The file links of each target field's source field, in the source's order (one ``crm.item.get``)."""
    reply = source.call("crm.item.get", {"entityTypeId": 2, "id": deal_id, "useOriginalUfNames": "Y"})
    item = reply.get("item") if isinstance(reply, Mapping) else None
    if not isinstance(item, Mapping):
        raise MappingError(f"crm.item.get of source deal {deal_id} gave no item")
    out: dict[str, list[_Link]] = {}
    for target_field in fields:
        source_field = spec.fields[target_field]
        if source_field not in item:
            raise MappingError(f"source deal {deal_id} has no field {source_field} (files.fields of the mapping)")
        value = item[source_field]
        values = value if isinstance(value, list) else [] if value in (None, False, "") else [value]
        if not all(isinstance(v, Mapping) and str(v.get("id") or "").isdigit() for v in values):
            raise MappingError(f"source field {source_field} of deal {deal_id} is not a file field")
        out[target_field] = [_Link(str(v["id"]), str(v.get("urlMachine") or "")) for v in values]
    return out


def _fetch(source: PortalClient, field: str, link: _Link, max_bytes: int) -> tuple[str, bytes] | Skipped:
    """Download one file: its ``(name, content)``, or why it stays behind."""
    if not link.url:
        return Skipped(field, f"file-{link.file_id}", None, "the source gave no download link (urlMachine)")
    headers: dict[str, str] = {}
    data = source.download(link.url, max_bytes, headers=headers)
    name = file_name(headers.get("Content-Disposition", ""), link.file_id)
    if data is None:
        size = headers.get("Content-Length", "")
        return Skipped(field, name, int(size) if size.isdigit() else None, f"over the {limit_text(max_bytes)} limit")
    return name, data


def transfer(source: PortalClient, target: PortalClient, deal_id: str, target_deal_id: str, spec: FilesSpec,
             ids: Mapping[str, list[str]]) -> tuple[list[str], list[Skipped]]:
    """Make each target file field named in ``ids`` (from :func:`~relay.mapping.files.file_ids`) hold the
    source deal's files, with one ``crm.deal.update``; returns the names sent and the files skipped.

    Files over ``spec.max_bytes`` stay behind; a field whose every file stays behind is left untouched,
    one the source emptied is cleared.  The files sent are those ``crm.item.get`` lists now (``ids`` may be
    a moment older).  Raises :mod:`relay.errors` classes: TargetMisconfigured, MappingError, the client's."""
    unknown = sorted(set(ids) - set(spec.fields))
    if unknown:
        raise MappingError(f"not target fields of files.fields: {', '.join(unknown)}")
    fields = [f for f in spec.fields if f in ids]
    if not fields:
        return [], []
    multiple = _multiple(target, fields)
    links = _links(source, deal_id, spec, fields) if any(ids[f] for f in fields) else {f: [] for f in fields}
    update: dict[str, Any] = {}
    sent: list[str] = []
    skipped: list[Skipped] = []
    for field in fields:
        if not links[field]:
            update[field] = [] if multiple[field] else ""
            continue
        payload: list[dict[str, list[str]]] = []
        for link in links[field]:
            if payload and not multiple[field]:
                skipped.append(Skipped(field, f"file-{link.file_id}", None, "the target field holds one file"))
                continue
            got = _fetch(source, field, link, spec.max_bytes)
            if isinstance(got, Skipped):
                skipped.append(got)
                continue
            name, data = got
            payload.append({"fileData": [name, base64.b64encode(data).decode("ascii")]})
            sent.append(name)
        if payload:
            update[field] = payload if multiple[field] else payload[0]
    if update:
        target.call("crm.deal.update", {"id": target_deal_id, "fields": update}, write=True)
    for skip in skipped:
        log.warning("deal %s: file %r of %s not sent: %s", deal_id, skip.name, skip.field, skip.reason)
    log.info("deal %s -> %s: %d file(s) sent, %d skipped, %d field(s) cleared", deal_id, target_deal_id, len(sent),
             len(skipped), sum(1 for v in update.values() if v in ("", [])))
    return sent, skipped
