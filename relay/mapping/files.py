"""Pure: which file custom fields travel with a deal, and which source files they hold.

The mapping's ``files:`` section names target ``file`` fields and the source field each one copies
(``fields``), and the size over which a file stays behind (``max_bytes``, per file).  A file value, as
``crm.deal.get`` / ``crm.deal.list`` read it, is ``{"id", "showUrl", "downloadUrl"}`` (a list of them for a
multiple field; ``crm.item.get`` gives ``{"id", "url", "urlMachine"}`` — same ``id``) or empty
(``null``, ``false``, ``""``, ``[]``) — ``bitrix24-protocol.md`` §5.11,
``api-reference/files/how-to-update-files.md``.  Only the ids matter here: :func:`files_print` of them is
stored after a transfer so that an update which did not touch the files sends nothing
(:mod:`relay.sync.files` moves the bytes).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from relay.errors import MappingError
from relay.yamlconf import problem

_FILE_FIELD = re.compile(r"^UF_CRM_[A-Z0-9_]+$")
_STRICT = ConfigDict(frozen=True, extra="forbid")
#: the default per-file limit (10 MiB)
MAX_BYTES = 10 * 1024 * 1024


def _file_field(name: str) -> str:
    if not _FILE_FIELD.match(name):
        raise problem(f"{name!r} is not a custom file field name (UF_CRM_... in upper case)")
    return name


FileField = Annotated[str, AfterValidator(_file_field)]


class FilesSpec(BaseModel):
    """``fields``: target file field -> source file field; ``max_bytes``: larger files stay behind."""

    model_config = _STRICT
    fields: dict[FileField, FileField] = {}
    max_bytes: Annotated[int, Field(ge=1)] = MAX_BYTES

    @field_validator("fields", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


def _ordered(ids: set[str]) -> list[str]:
    """Numeric order for digit strings (``"9"`` before ``"10"``), stable for anything else."""
    return sorted(ids, key=lambda text: (len(text), text))


def _one_id(field: str, item: Any) -> str:
    raw = item.get("id") if isinstance(item, Mapping) else None
    text = "" if raw is None or isinstance(raw, bool) else str(raw).strip()
    if not text.isdigit() or int(text) == 0:
        # the value itself stays out of the message: a crm.item.get link carries a token
        raise MappingError(f"source field {field} holds a {type(item).__name__} where a file "
                           "({id: ...}) is expected; is it a file field?")
    return str(int(text))


def _field_ids(field: str, value: Any) -> list[str]:
    if value is None or value is False or value in ("", [], {}):
        return []
    items = value if isinstance(value, list) else [value]
    return _ordered({_one_id(field, item) for item in items if item not in (None, "", False)})


def file_ids(deal: Mapping[str, Any], spec: FilesSpec) -> dict[str, list[str]]:
    """Per target field of ``spec``, the sorted ids (text) of the files the source field holds in
    ``deal``; a source field absent from ``deal`` is unknown and its target field is left out.
    Raises :class:`~relay.errors.MappingError` for a value that is not a file value."""
    return {target: _field_ids(source, deal[source]) for target, source in spec.fields.items() if source in deal}


def files_print(ids: Mapping[str, list[str]]) -> str:
    """A stable sha256 hex of the non-empty fields of ``ids`` (order-independent); ``""`` when
    there is no file at all."""
    present = {field: _ordered({str(i) for i in values}) for field, values in ids.items() if values}
    if not present:
        return ""
    text = json.dumps(present, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
