"""Pure: decode and check what a 1C:Enterprise base posts to ``/api/webhook/1c/<kind>``.

The user's modules (``shared/seeds`` 000, 001, 003) build a ``Структура`` and write it with
``ЗаписатьJSON`` (or БСП's ``ОбъектВСтрокуJSON``), then ``HTTPЗапрос.УстановитьТелоИзСтроки(Строка,
КодировкаТекста.UTF8)``.  What arrives, and what this module accepts:

* UTF-8, **possibly with a byte order mark**: ``УстановитьТелоИзСтроки``'s third parameter
  ``ИспользованиеByteOrderMark`` defaults to ``Авто`` — no BOM for UTF-8 — but a configuration in
  compatibility mode (and older platforms) use ``Использовать``, which writes one.  Bodies with and
  without the BOM are accepted; UTF-16 (``КодировкаТекста.UTF16``) is decoded too.
  ``Content-Type: application/json`` without a charset; other content types are accepted when the
  body is a JSON object (some modules send ``text/plain``).
* Pretty-printed JSON (``ЗаписатьJSON`` writes line breaks and tabs by default); dates as
  ``"2024-01-15T10:30:00"`` (local time of the 1C server, no zone), the empty date as
  ``"0001-01-01T00:00:00"``; numbers as JSON numbers; ``Булево`` as ``true``/``false``.  Strings from
  the older ``ОбъектВСтрокуJSON`` may carry numbers and booleans as text: ``"1500.50"``, ``"1 500,50"``,
  ``"Да"``/``"Нет"`` are read too.
* ``action`` is ``create``, ``update`` or ``delete``.  ``create`` and ``update`` are treated alike (an
  upsert): the seed modules compute it with ``ЭтоНовый()`` inside ``ПриЗаписи``, where the object is
  already written, so it cannot tell a new object (the usual advice is to ask in ``ПередЗаписью`` and
  pass the answer on in ``ДополнительныеСвойства``); and a call may be lost or repeated anyway.

Identity (``key``): a counterparty by its ``Guid`` (``XMLСтрока(Ссылка)``, sent by the improved
module) or else its ``Код``; a document by its ``Guid`` or else kind + ``НомерДокумента`` + year of
``ДатаДокумента`` (1C numbers documents per year).  ``СсылкаДокумента`` is ``Строка(Ссылка)``, a
presentation such as "Поступление товаров и услуг 0000-000123 от 15.01.2024 10:30:00" — kept as
data, never used as identity.  Derived values are added for the mapping: ``Валюта`` (the ISO 4217
letter code of ``КодВалюты``: "980" -> "UAH"), ``Год`` (the document's year), and the dates converted to
the base's time zone with an offset (what Bitrix24 expects).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pycountry

from relay.errors import BadRequest
from relay.intake.bitrix24 import BodyLimits, json_object

#: URL path part -> record kind
KINDS = {"clients": "client", "invoices": "incoming", "outgoing-invoices": "outgoing"}
DATA_KEY = {"client": "clientData", "incoming": "invoiceData", "outgoing": "invoiceData"}
SECTION = {"client": "clients", "incoming": "incoming", "outgoing": "outgoing"}  # of the base's mapping
ACTIONS = ("create", "update", "delete")
EMPTY_DATE = "0001-01-01T00:00:00"
_BOM8 = b"\xef\xbb\xbf"
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?$", re.ASCII)
_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})", re.ASCII)
_NUMBER = re.compile(r"^[+-]?\d{1,30}(?:[.,]\d{1,30})?$", re.ASCII)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TEXT_KEYS = {
    "client": ("Код", "Наименование", "ИНН", "Телефон", "Email", "Адрес", "Guid"),
    "incoming": ("СсылкаДокумента", "НомерДокумента", "Постачальник", "ЄДРПОУ", "КодВалюты", "Комментарий", "Guid",
                 "КодКлиента", "ИННКлиента", "Клиент"),
    "outgoing": ("СсылкаДокумента", "НомерДокумента", "Клиент", "ЄДРПОУ", "КодВалюты", "Комментарий", "Guid",
                 "КодКлиента", "ИННКлиента"),
}
DATE_KEYS = ("ДатаДокумента", "ДатаОплаты")
POSITION_TEXT = ("НаименованиеТовара", "КодТовара", "ЕдиницаИзмерения")
POSITION_NUMBERS = ("Количество", "Цена", "Сумма")


@dataclass(frozen=True)
class OneCCall:
    """A checked 1C call: what to do with which record, and the record's data (normalized)."""

    kind: str  # client | incoming | outgoing
    action: str  # upsert | delete
    key: str  # identity of the record within its base
    data: dict[str, Any]

    @property
    def alias(self) -> str | None:
        """The key the record had before its module sent a ``Guid`` (number + year): a record relayed
        by the old module is found by it, so switching modules duplicates nothing."""
        if not self.key.startswith(f"{self.kind}:") or self.kind == "client" or not self.data.get("Guid"):
            return None
        number, year = str(self.data.get("НомерДокумента") or ""), str(self.data.get("Год") or "")
        return f"{self.kind}:{number[:60]}:{year}" if number and year else None

    @property
    def payload(self) -> dict[str, Any]:
        """What the job stores (1C sends the data itself: it is not read again)."""
        out: dict[str, Any] = {"kind": self.kind, "action": self.action, "data": self.data}
        if self.alias:
            out["alias"] = self.alias
        return out


def decode(kind: str, body: bytes, *, limits: BodyLimits | None = None, timezone: str = "UTC") -> OneCCall:
    """Check one 1C body posted to ``/api/webhook/1c/<path>`` of record ``kind``; BadRequest says what
    is wrong in words a 1C administrator reading the module's log can act on."""
    text = _text(body)
    if not text.strip():
        raise BadRequest("empty body: expected the JSON the 1C module sends ({\"action\": ..., "
                         f"\"{DATA_KEY[kind]}\": {{...}}}})")
    data = json_object(text, limits or BodyLimits())
    action = data.get("action")
    if not isinstance(action, str) or action.strip().lower() not in ACTIONS:
        raise BadRequest("\"action\" must be \"create\", \"update\" or \"delete\""
                         + ("" if "action" in data else " (it is missing)"))
    record = data.get(DATA_KEY[kind])
    if not isinstance(record, dict):
        what = "missing" if record is None else f"a {_type(record)}, not an object"
        raise BadRequest(f"\"{DATA_KEY[kind]}\" is {what}: this URL takes "
                         + ("counterparties" if kind == "client" else "invoices"))
    clean = _clean(kind, record, ZoneInfo(timezone))
    key = _key(kind, clean)
    return OneCCall(kind, "delete" if action.strip().lower() == "delete" else "upsert", key, clean)


def _text(body: bytes) -> str:
    if body.startswith(_BOM8):
        body = body[len(_BOM8):]
    elif body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return body.decode("utf-16")
        except UnicodeDecodeError:
            raise BadRequest("body starts as UTF-16 but is not valid UTF-16") from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not UTF-8 (invalid byte at offset {exc.start}): send the string with "
                         "КодировкаТекста.UTF8") from None


def _type(value: Any) -> str:
    return {str: "string", bool: "boolean", int: "number", float: "number", list: "list", dict: "object"}.get(
        type(value), "null" if value is None else type(value).__name__)


def _as_text(where: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        raise BadRequest(f"{where} must be text, not a boolean")
    if isinstance(value, (int, float)):
        return format(value, "g") if isinstance(value, float) else str(value)
    if isinstance(value, str):
        if "\x00" in value:  # no 1C string holds one; PostgreSQL cannot store it in a key
            raise BadRequest(f"{where} contains a NUL character")
        return value.strip()
    raise BadRequest(f"{where} must be text, not a {_type(value)}")


def _as_number(where: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadRequest(f"{where} must be a number, not a boolean")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.replace("\u00a0", "").replace(" ", "")
        if not _NUMBER.match(text):
            raise BadRequest(f"{where} must be a number, got text {value[:40]!r}")
        number = float(text.replace(",", "."))
    else:
        raise BadRequest(f"{where} must be a number, not a {_type(value)}")
    if not math.isfinite(number):
        raise BadRequest(f"{where} is out of range: {str(value)[:40]!r}")
    return number


def _as_bool(where: str, value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("да", "так", "true", "истина", "1", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("нет", "ні", "false", "ложь", "0", "no"):
        return False
    raise BadRequest(f"{where} must be true or false, not {_type(value)} {str(value)[:20]!r}")


def _as_date(where: str, value: Any, zone: ZoneInfo) -> str | None:
    """A 1C date (local, no zone) as ISO 8601 with the zone's offset; None for the empty date."""
    if value is None or value == "" or value == EMPTY_DATE:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{where} must be a date like \"2024-01-15T10:30:00\", not a {_type(value)}")
    text = value.strip()
    match = _DATE.match(text[:19])
    if not match or (len(text) > 19 and not _OFFSET.fullmatch(text[19:])):
        raise BadRequest(f"{where} must be a date like \"2024-01-15T10:30:00\", got {text[:40]!r}")
    year, month, day = int(match[1]), int(match[2]), int(match[3])
    if year <= 1:
        return None
    try:
        moment = dt.datetime(year, month, day, int(match[4] or 0), int(match[5] or 0), int(match[6] or 0))
    except ValueError:
        raise BadRequest(f"{where} is not a real date: {text[:40]!r}") from None
    if len(text) > 19:
        try:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).isoformat()
        except ValueError:  # an offset of 24 hours or more
            raise BadRequest(f"{where} has no valid time zone offset: {text[:40]!r}") from None
    return moment.replace(tzinfo=zone).isoformat()


def currency(code: str) -> str:
    """ISO 4217 letter code of a 1C currency code: numeric ("980") or already letters ("UAH"); "" if unknown."""
    text = code.strip()
    if re.fullmatch(r"[A-Za-z]{3}", text):
        return text.upper()
    if text.isdigit():
        found = pycountry.currencies.get(numeric=text.zfill(3))
        return str(found.alpha_3) if found is not None and found.alpha_3 != "XXX" else ""  # 999: no currency
    return ""


def _clean(kind: str, record: Mapping[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    key = DATA_KEY[kind]
    out: dict[str, Any] = {}
    for name in TEXT_KEYS[kind]:
        if name in record:
            out[name] = _as_text(f"{key}.{name}", record[name])
    if kind == "client":
        return out
    for name in DATE_KEYS:
        if name in record:
            out[name] = _as_date(f"{key}.{name}", record[name], zone)
    out["СуммаДокумента"] = _as_number(f"{key}.СуммаДокумента", record.get("СуммаДокумента"))
    if "Проведен" in record:
        out["Проведен"] = _as_bool(f"{key}.Проведен", record["Проведен"])
    out["Валюта"] = currency(out.get("КодВалюты", ""))
    out["Год"] = (out.get("ДатаДокумента") or "")[:4]
    positions = record.get("positions", [])
    if positions is None:
        positions = []
    if not isinstance(positions, list):
        raise BadRequest(f"{key}.positions must be a list of goods, not a {_type(positions)}")
    rows = []
    for n, item in enumerate(positions):
        where = f"{key}.positions[{n}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object, not a {_type(item)}")
        row: dict[str, Any] = {name: _as_text(f"{where}.{name}", item.get(name)) for name in POSITION_TEXT}
        row.update({name: _as_number(f"{where}.{name}", item.get(name)) for name in POSITION_NUMBERS})
        rows.append(row)
    out["positions"] = rows
    for name, value in record.items():  # keys the relay does not know are kept as text for templates
        if name not in out and name != "positions" and isinstance(value, (str, int, float)) \
                and not isinstance(value, bool) and isinstance(name, str) and len(out) < 200:
            out[name] = str(value).strip()[:2000]
    return out


def _key(kind: str, data: Mapping[str, Any]) -> str:
    guid = str(data.get("Guid") or "")
    if guid:
        if not _GUID.match(guid):
            raise BadRequest(f"{DATA_KEY[kind]}.Guid must be XMLСтрока(Ссылка), a GUID like "
                             "\"8a3c2f4e-1b2d-11ee-9f3a-005056a1b2c3\"")
        return f"{kind}:{guid.lower()}"
    if kind == "client":
        code = str(data.get("Код") or "")
        if not code:
            raise BadRequest("clientData.Код is empty: the relay tells counterparties apart by their code "
                             "(or Guid)")
        return f"client:{code[:80]}"
    number = str(data.get("НомерДокумента") or "")
    if not number:
        raise BadRequest("invoiceData.НомерДокумента is empty: the relay tells documents apart by number and "
                         "year (or Guid)")
    year = str(data.get("Год") or "")
    if not year:
        raise BadRequest("invoiceData.ДатаДокумента is missing or empty: the relay tells documents apart by "
                         "number and year (or Guid)")
    return f"{kind}:{number[:60]}:{year}"
