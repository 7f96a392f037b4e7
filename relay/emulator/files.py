"""Custom fields of type ``file`` on deals: uploads, keep/delete rules, the two read shapes, download.

* Upload: ``crm.deal.add/update`` take ``{"fileData": [name, base64]}`` (multiple: a list of them);
  ``crm.item.add/update`` take ``[name, base64]`` (multiple: ``[[name, base64], ...]``) —
  ``api-reference/files/how-to-upload-files.md``, ``api-reference/crm/universal/crm-item-update.md``.
* Update: the value sets the field as a whole; ``{"id": N}`` keeps file N when the field holds it,
  any other id resets it; files not passed are deleted; ``""`` clears (a multiple field also ``[]``) —
  ``crm-item-update.md`` ("How to Update a File Type Custom Field"), ``api-reference/files/how-to-update-files.md``.
  For ``crm.deal.update`` the docs only say it is "not recommended"; the emulator applies the same
  rules and also honours the legacy ``{"id": N, "del": "Y"}`` (dev.1c-bitrix.ru
  ``rest_help/crm/userfields/user_field.php``; UNVERIFIED against a live portal).
* Read: ``crm.deal.get/list`` give ``{"id", "showUrl", "downloadUrl"}`` with relative, browser-only
  links (protocol notes §5.11, ``bitrix-tools/b24-rest-docs`` issue #94); ``crm.item.get`` gives
  ``{"id", "url", "urlMachine"}`` — ``how-to-update-files.md``.  Here ``urlMachine`` points at the
  emulator's webhook path (it carries the webhook secret, like the real link carries a token) plus a
  signed ``token``; :func:`download` serves it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from relay.emulator.core import EmuError
from relay.emulator.state import PortalState
from relay.emulator.values import intval, php_str, strict_id

GET_FILE = "crm.controller.item.getFile"
_SHOW = "/bitrix/components/bitrix/crm.deal.show/show_file.php"


def is_file_field(state: PortalState, name: str) -> bool:
    """True for a configured custom field of type ``file``."""
    return state.config.uf_fields.get(name) == "file"


def _token(state: PortalState, file_id: int) -> str:
    return hmac.new(state.config.secret.encode(), f"file:{file_id}".encode(), hashlib.sha256).hexdigest()[:32]


def legacy_view(deal_id: int, field: str, file_id: int) -> dict[str, Any]:
    """What ``crm.deal.get`` shows for one file (relative links that need a browser session)."""
    query = f"ownerId={deal_id}&fieldName={field}&dynamic=Y&fileId={file_id}"
    return {"id": file_id, "showUrl": f"{_SHOW}?{query}", "downloadUrl": f"{_SHOW}?auth=&{query}"}


def _item_view(state: PortalState, deal_id: int, field: str, file_id: int) -> dict[str, Any]:
    domain = state.config.domain
    base = state.base_url or f"https://{domain}"
    query = urlencode({"entityTypeId": 2, "id": deal_id, "fieldName": field, "fileId": file_id})
    webhook = f"{base}/rest/{state.config.user_id}/{state.config.secret}/"
    return {
        "id": file_id,
        "url": f"https://{domain}/bitrix/services/main/ajax.php?action={GET_FILE}&SITE_ID=s1&{query}",
        "urlMachine": f"{webhook}{GET_FILE}.json?{query}&token={_token(state, file_id)}",
    }


def item_value(state: PortalState, deal_id: int, field: str, stored: Any) -> Any:
    """The ``crm.item.get`` shape of a stored file field value (object, list of them, or null)."""
    if isinstance(stored, list):
        return [_item_view(state, deal_id, field, intval(v["id"])) for v in stored]
    if isinstance(stored, Mapping):
        return _item_view(state, deal_id, field, intval(stored["id"]))
    return stored


def _stored_ids(stored: Any) -> list[int]:
    if isinstance(stored, list):
        return [intval(v["id"]) for v in stored]
    return [intval(stored["id"])] if isinstance(stored, Mapping) else []


def _invalid(style: str, field: str) -> EmuError:
    if style == "item":
        return EmuError(400, "CRM_FIELD_ERROR_VALUE_NOT_VALID", f'Invalid value for field "{field}"')
    return EmuError(400, "", f"Field '{field}' has an invalid file value")


def _decode(style: str, field: str, pair: Any) -> tuple[str, bytes]:
    if not (isinstance(pair, list) and len(pair) >= 2 and all(isinstance(p, str) for p in pair[:2])):
        raise _invalid(style, field)
    try:
        return pair[0] or "file", base64.b64decode(pair[1], validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(style, field) from None


def _entry(style: str, field: str, value: Any) -> tuple[str, Any]:
    """Classify one value: ``("new", (name, bytes))``, ``("keep", id)``, ``("del", id)`` or ``("skip", None)``."""
    if value is None or value == "":
        return "skip", None
    if isinstance(value, Mapping):
        if style == "legacy" and "fileData" in value:
            return "new", _decode(style, field, value["fileData"])
        file_id = strict_id(value.get("id"))
        if file_id is not None:
            return ("del" if php_str(value.get("del")).upper() == "Y" else "keep"), file_id
    elif style == "item" and isinstance(value, list):
        return "new", _decode(style, field, value)
    elif strict_id(value) is not None:
        return "keep", strict_id(value)
    if style == "item":
        raise _invalid(style, field)
    return "skip", None


def resolve(state: PortalState, deal_id: int, old: Mapping[str, Any] | None, clean: dict[str, Any],
            style: str) -> None:
    """Turn the raw file-field values in ``clean`` into stored values; store new, delete dropped files."""
    for field in [n for n in clean if is_file_field(state, n)]:
        current = _stored_ids(old.get(field)) if old is not None else []
        multiple = field in state.config.uf_multiple
        raw = clean[field]
        if multiple:
            if raw in (None, "") or raw == []:
                entries: list[tuple[str, Any]] = []
            elif isinstance(raw, list) and style == "item" and isinstance(raw[0], str):
                raise _invalid(style, field)  # a bare [name, base64] where [[name, base64], ...] is due
            elif isinstance(raw, list):
                entries = [_entry(style, field, v) for v in raw]
            elif style == "item":
                raise EmuError(400, "100", f"Expected iterable value for multiple field, but got {type(raw).__name__}")
            else:
                entries = [_entry(style, field, raw)]
        else:
            entries = [_entry(style, field, raw[0] if style == "legacy" and isinstance(raw, list) and raw else raw)]
        kept: list[int] = []
        new_ids: list[int] = []
        unchanged = False
        for kind, data in entries:
            if kind == "keep" and data in current and data not in kept:
                kept.append(data)
            elif kind == "new":
                file_id = state.next_id("file")
                state.files[file_id] = {"name": data[0], "content": data[1], "owner": deal_id, "field": field}
                new_ids.append(file_id)
            elif kind == "del" and not multiple and data not in current:
                unchanged = True  # deleting a file the field does not hold changes nothing
            elif kind == "skip" and not multiple and raw not in (None, ""):
                unchanged = True  # an unreadable single value leaves the field alone (legacy)
        if unchanged and not new_ids:
            del clean[field]
            continue
        ids = kept + new_ids
        for gone in set(current) - set(ids):
            state.files.pop(gone, None)
        views = [legacy_view(deal_id, field, i) for i in ids]
        clean[field] = views if multiple else (views[-1] if views else None)


def drop_owner(state: PortalState, deal_id: int) -> None:
    """Forget the files of a deleted deal."""
    for file_id in [k for k, f in state.files.items() if f["owner"] == deal_id]:
        del state.files[file_id]


def download(state: PortalState, params: Mapping[str, Any]) -> tuple[str, bytes]:
    """The file behind an ``urlMachine`` link; a wrong token or id is ``NOT_FOUND`` (UNVERIFIED code)."""
    file_id = strict_id(params.get("fileId"))
    stored = state.files.get(file_id or 0)
    token = php_str(params.get("token"))
    if file_id is None or stored is None or not hmac.compare_digest(token, _token(state, file_id)):
        raise EmuError(404, "NOT_FOUND", "File not found")
    return str(stored["name"]), bytes(stored["content"])


def add_file(state: PortalState, deal_id: int, field: str, name: str, content: bytes) -> int:
    """Attach a file to a deal's file field as a user would (multiple: appended); returns its id."""
    record = state.deal(deal_id)
    if not is_file_field(state, field):
        raise ValueError(f"{field} is not a file field")
    payload = {"fileData": [name, base64.b64encode(content).decode()]}
    current = record.get(field)
    keep = [{"id": i} for i in _stored_ids(current)] if field in state.config.uf_multiple else []
    clean: dict[str, Any] = {field: [*keep, payload]}
    resolve(state, deal_id, record, clean, "legacy")
    record[field] = clean[field]
    return max(_stored_ids(clean[field]))


def files_of(state: PortalState, deal_id: int, field: str) -> list[tuple[int, str, bytes]]:
    """``(id, name, content)`` of the files a deal's field holds."""
    record = state.deal(deal_id)
    out = []
    for file_id in _stored_ids(record.get(field)):
        stored = state.files[file_id]
        out.append((file_id, str(stored["name"]), bytes(stored["content"])))
    return out
