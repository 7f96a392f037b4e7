"""Pure: the Bitrix24 REST protocol — building calls and batch commands, decoding replies.

* Calls are ``POST <webhook_url><method>.json`` with a JSON body —
  ``settings/how-to-call-rest-api/general-principles.md``.
* ``batch`` takes ``cmd`` ``{name: "method?query"}`` (≤ 50) and ``halt``; references are written
  ``$result[name][field]``; the reply is HTTP 200 with ``result.result`` / ``result.result_error``
  whose empty sections are ``[]`` — ``settings/how-to-call-rest-api/batch.md``.
* Errors are ``{"error": CODE, "error_description": TEXT}``; legacy CRM methods use an empty code
  ("Not found" is HTTP 400 with ``error: ""``) — ``_includes/system-errors.md``, ``crm-deal-get.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from relay.errors import (
    ApiError,
    AuthError,
    NotFound,
    OperationTimeLimit,
    QueryLimitExceeded,
    ServerError,
    ValidationError,
)
from relay.phpquery import build_query

MAX_BATCH = 50  # settings/how-to-call-rest-api/batch.md

_AUTH_CODES = {
    "NO_AUTH_FOUND",
    "INVALID_CREDENTIALS",
    "ACCESS_DENIED",
    "INSUFFICIENT_SCOPE",
    "USER_ACCESS_ERROR",
    "EXPIRED_TOKEN",
    "INVALID_TOKEN",
    "WRONG_AUTH_TYPE",
    "PAYMENT_REQUIRED",
    "INVALID_REQUEST",
    "PORTAL_DELETED",
    "WRONG_CLIENT",
    "METHOD_CONFIRM_WAITING",
}
_NOT_FOUND_CODES = {"NOT_FOUND", "OWNER_NOT_FOUND"}
_NOT_FOUND_TEXT = re.compile(r"(?i)(?:\w+\s)?not found\.?")
_SERVER_CODES = {"INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER", "OVERLOAD_LIMIT"}


@dataclass(frozen=True)
class Command:
    """One REST call: a method and its parameters (may contain :class:`relay.phpquery.Ref`)."""

    method: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        """The ``method?query`` string used inside ``batch``."""
        query = build_query(self.params)
        return f"{self.method}?{query}" if query else self.method


def batch_params(commands: Mapping[str, Command], *, halt: bool = False) -> dict[str, Any]:
    """Parameters of one ``batch`` call; refuses more than 50 commands."""
    if len(commands) > MAX_BATCH:
        raise ValueError(f"a batch holds at most {MAX_BATCH} commands, got {len(commands)}")
    return {"halt": 1 if halt else 0, "cmd": {name: c.encode() for name, c in commands.items()}}


def classify(
    code: str | None,
    description: str | None,
    *,
    status: int | None = None,
    method: str = "",
    command: str | None = None,
    reset_at: float | None = None,
) -> ApiError:
    """Turn an error code/description (and HTTP status) into the matching typed error."""
    code = (code or "").strip()
    text = (description or "").strip()
    upper = code.upper()
    kw: dict[str, Any] = {"method": method, "status": status, "command": command}
    if upper == "QUERY_LIMIT_EXCEEDED":
        return QueryLimitExceeded(code, text, **kw)
    if upper == "OPERATION_TIME_LIMIT" or (status == 429 and not code):
        return OperationTimeLimit(code, text, reset_at=reset_at, **kw)
    if upper in _SERVER_CODES or (status is not None and status >= 500 and upper not in _AUTH_CODES):
        return ServerError(code, text, **kw)
    if upper in _AUTH_CODES or (not code and text.lower().startswith("access denied")):
        return AuthError(code, text, **kw)
    if upper in _NOT_FOUND_CODES or (not code and _NOT_FOUND_TEXT.fullmatch(text)):
        return NotFound(code, text, **kw)
    return ValidationError(code, text, **kw)


def _reset_at(payload: Mapping[str, Any]) -> float | None:
    time_block = payload.get("time")
    if isinstance(time_block, Mapping):
        value = time_block.get("operating_reset_at")
        if isinstance(value, (int, float)):
            return float(value)
    return None


def decode_reply(status: int, body: bytes | str, *, method: str) -> dict[str, Any]:
    """Decode a REST reply into its JSON object, or raise the typed error it carries."""
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        snippet = "empty body" if not body else "body is not a JSON object"
        raise classify("", f"unexpected answer: {snippet}", status=status, method=method) if status >= 400 \
            else ServerError("ERROR_UNEXPECTED_ANSWER", snippet, method=method, status=status)
    if "error" in payload and (status >= 400 or "result" not in payload):
        raise classify(
            str(payload.get("error") or ""),
            str(payload.get("error_description") or ""),
            status=status,
            method=method,
            reset_at=_reset_at(payload),
        )
    if status >= 400:
        raise classify("", f"HTTP {status} without an error code", status=status, method=method)
    if "result" not in payload:
        raise ServerError("ERROR_UNEXPECTED_ANSWER", "reply has no result", method=method, status=status)
    return payload


@dataclass(frozen=True)
class BatchReply:
    """Per-command results and errors of one ``batch`` call."""

    results: dict[str, Any]
    errors: dict[str, ApiError]
    totals: dict[str, int] = field(default_factory=dict)  # ``result_total`` of list commands

    def get(self, name: str) -> Any:
        """The result of command ``name``; raises its error if it failed (or never ran)."""
        if name in self.errors:
            raise self.errors[name]
        if name not in self.results:
            raise ValidationError("", "command did not run (batch halted or too long)", command=name)
        return self.results[name]


def _section(value: Any) -> dict[str, Any]:
    # Empty sections arrive as JSON arrays; a list of results means commands were given as a list.
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def decode_batch(payload: Mapping[str, Any], commands: Mapping[str, Command]) -> BatchReply:
    """Split a decoded ``batch`` reply into results and typed per-command errors."""
    outer = payload.get("result")
    if not isinstance(outer, Mapping):
        raise ServerError("ERROR_UNEXPECTED_ANSWER", "batch reply has no result object", method="batch")
    results = _section(outer.get("result"))
    errors: dict[str, ApiError] = {}
    for name, err in _section(outer.get("result_error")).items():
        method = commands[name].method if name in commands else ""
        if isinstance(err, Mapping):
            errors[name] = classify(
                str(err.get("error") or ""), str(err.get("error_description") or ""),
                method=method, command=name,
            )
        else:
            errors[name] = classify("", str(err), method=method, command=name)
    totals = {k: int(v) for k, v in _section(outer.get("result_total")).items()
              if isinstance(v, int) or (isinstance(v, str) and v.isdigit())}
    return BatchReply(results={k: v for k, v in results.items() if k not in errors}, errors=errors, totals=totals)
