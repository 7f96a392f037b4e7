"""Shared building blocks of the emulator: the error a method raises and the reply it returns.

Error shape ``{"error": CODE, "error_description": TEXT}`` with a possibly empty code —
``_includes/error-info.md``, ``error-codes.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class EmuError(Exception):
    """A Bitrix24 error reply: HTTP ``status``, ``code`` (may be empty) and ``description``."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(f"{status} {code} {description}".strip())
        self.status = status
        self.code = code
        self.description = description

    def body(self) -> dict[str, Any]:
        """The JSON error object Bitrix24 answers with."""
        return {"error": self.code, "error_description": self.description}


@dataclass
class Reply:
    """What a method produced: ``value`` goes to ``result``; list methods add ``total``/``next``."""

    value: Any
    total: int | None = None
    next: int | None = None


def not_found() -> EmuError:
    """Legacy CRM not-found: HTTP 400 with an empty code — ``api-reference/crm/deals/crm-deal-get.md``."""
    return EmuError(400, "", "Not found")


def invalid_id() -> EmuError:
    """Legacy CRM bad id: HTTP 400, empty code — ``api-reference/crm/deals/crm-deal-get.md``."""
    return EmuError(400, "", "ID is not defined or invalid")


def validation(description: str) -> EmuError:
    """Legacy CRM validation failure: HTTP 400, empty code — ``api-reference/crm/deals/crm-deal-add.md``."""
    return EmuError(400, "", description)


def method_not_found() -> EmuError:
    """Unknown method: 404 ``ERROR_METHOD_NOT_FOUND`` — ``api-reference/rest-v3.md``."""
    return EmuError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")


def param(params: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Read a legacy-method parameter by its lower- or upper-case name (``id``/``ID``).

    Legacy CRM REST proxies accept both spellings (b24restdocs examples send ``ID`` and ``id``
    to ``crm.deal.get`` — ``api-reference/crm/deals/crm-deal-get.md``).
    """
    for key in (name, name.lower(), name.upper()):
        if key in params:
            return params[key]
    return default


def php_truthy(value: Any) -> bool:
    """PHP truthiness of a decoded parameter: ``""``, ``"0"``, ``0``, ``False``, ``None`` are false."""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value not in ("", "0")
    if isinstance(value, (list, dict)):
        return bool(value)
    return True


def php_array(section: Mapping[str, Any]) -> Any:
    """Encode a PHP array like ``json_encode``: empty -> ``[]``, keys ``0..n-1`` -> list, else object.

    Batch sections are PHP arrays, so empty ones arrive as ``[]`` — ``settings/how-to-call-rest-api/batch.md``.
    """
    if not section:
        return []
    keys = list(section)
    if keys == [str(i) for i in range(len(keys))]:
        return [section[k] for k in keys]
    return dict(section)
