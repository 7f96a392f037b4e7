"""Value conversions the way Bitrix24 (PHP) does them: strings out, loose typing in.

``crm.deal.get`` returns every scalar as a string, ``Y``/``N`` chars and ISO-8601 dates with an
offset — ``api-reference/crm/deals/crm-deal-get.md``.  Filters compare numbers numerically and
dates as dates — ``api-reference/crm/deals/crm-deal-list.md``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

_NUM = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
_INT_PREFIX = re.compile(r"^\s*[-+]?\d+")
_DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}|^\d{2}\.\d{2}\.\d{4}")
_TZ = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def parse_tz(spec: str) -> timezone:
    """``"+03:00"`` -> a fixed-offset timezone (``"UTC"``/``"Z"`` accepted)."""
    if spec.upper() in ("UTC", "Z"):
        return UTC
    m = _TZ.match(spec.strip())
    if not m:
        raise ValueError(f"bad timezone offset {spec!r}; expected e.g. '+03:00'")
    delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
    return timezone(-delta if m.group(1) == "-" else delta)


def is_numeric(value: Any) -> bool:
    """True for ints/floats and numeric strings (``"410"``, ``"1000.00"``); never for bools."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and bool(_NUM.match(value))


def php_str(value: Any) -> str:
    """PHP string conversion: ``None`` -> ``""``, ``True`` -> ``"1"``, ``False`` -> ``""``, ``2.0`` -> ``"2"``."""
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def intval(value: Any) -> int:
    """PHP ``intval``: leading integer of a string, 0 when there is none."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        if _NUM.match(value):
            return int(float(value))
        m = _INT_PREFIX.match(value)
        return int(m.group(0)) if m else 0
    return 0


def floatval(value: Any) -> float:
    """PHP ``floatval`` for the inputs a client sends (numbers, numeric strings, else 0.0)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _NUM.match(value):
        return float(value)
    return 0.0


def strict_id(value: Any) -> int | None:
    """A positive integer id from ``410`` or ``"410"``; ``None`` for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, float) and value.is_integer():
        return int(value) if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
        return number if number > 0 else None
    return None


def parse_datetime(value: Any, tz: timezone) -> datetime | None:
    """Read ISO dates/datetimes (``2024-08-30``, ``2024-08-30T14:29:00+02:00``) and ``30.08.2024``."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=tz)
    if not isinstance(value, str) or not _DATE_LIKE.match(value.strip()):
        return None
    text = value.strip()
    try:
        if re.match(r"^\d{2}\.\d{2}\.\d{4}", text):  # site format dd.mm.yyyy [hh:mm:ss]
            fmt = "%d.%m.%Y %H:%M:%S" if len(text) > 10 else "%d.%m.%Y"
            parsed = datetime.strptime(text, fmt)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def iso(moment: datetime) -> str:
    """ISO-8601 with offset and whole seconds: ``2024-08-30T14:29:00+02:00``."""
    return moment.isoformat(timespec="seconds")


def compare(left: Any, right: Any, tz: timezone) -> int:
    """Three-way compare: numerically if both are numeric, as dates if both are dates, else text."""
    if is_numeric(left) and is_numeric(right):
        a, b = float(left), float(right)
        return (a > b) - (a < b)
    da, db = parse_datetime(left, tz), parse_datetime(right, tz)
    if da is not None and db is not None:
        return (da > db) - (da < db)
    sa, sb = php_str(left).casefold(), php_str(right).casefold()
    return (sa > sb) - (sa < sb)


def sort_key(value: Any, tz: timezone) -> tuple[int, Any]:
    """A key that orders mixed values: empty first, then numbers, dates, text."""
    if value is None or value == "" or value == []:
        return (0, 0)
    if isinstance(value, list):
        value = value[0]
    if is_numeric(value):
        return (1, float(value))
    moment = parse_datetime(value, tz)
    if moment is not None:
        return (2, moment.timestamp())
    return (3, php_str(value).casefold())
