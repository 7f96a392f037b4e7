"""The ``batch`` method: sequential commands, ``$result[...]`` references, PHP-shaped reply.

``cmd`` (object or array of ``"method?query"``), ``halt``, max 50 commands
(``ERROR_BATCH_LENGTH_EXCEEDED``), no nested batch (``ERROR_BATCH_METHOD_NOT_ALLOWED``),
references ``$result[name][field]`` / ``$result[name][0][ID]``, reply sections
``result/result_error/result_total/result_next/result_time`` with empty ones as ``[]`` —
``settings/how-to-call-rest-api/batch.md``, ``settings/how-to-call-rest-api/data-encoding.md``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import timezone
from typing import Any
from urllib.parse import quote_plus, unquote, unquote_plus

from relay.emulator.core import EmuError, Reply, param, php_array, php_truthy
from relay.emulator.faults import Fault
from relay.emulator.limits import time_block
from relay.emulator.values import php_str
from relay.phpquery import build_query, parse_query

MAX_COMMANDS = 50

Invoke = Callable[[str, dict[str, Any]], Reply]
TakeFault = Callable[[str], "Fault | None"]

# a reference written literally, or percent-encoded once (GET/form bodies are double-encoded)
_REF = re.compile(r"\$result((?:\[[^\[\]]*\])+)|%24result((?:%5B(?:(?!%5[BD]).)*?%5D)+)", re.IGNORECASE)
_PART = re.compile(r"\[([^\[\]]*)\]")


def split_command(command: str) -> tuple[str, str]:
    """``'crm.deal.get?id=1'`` -> ``('crm.deal.get', 'id=1')``; method lower-cased, ``.json`` cut."""
    method, _, query = command.partition("?")
    method = method.strip().lower()
    if method.endswith(".json"):
        method = method[:-5]
    return method, query


def parse_commands(cmd: Any) -> list[tuple[str, str]]:
    """``cmd`` as ``[(name, command)]``; a list gets names ``"0"``, ``"1"``, ..."""
    if isinstance(cmd, list):
        return [(str(i), php_str(c)) for i, c in enumerate(cmd)]
    if isinstance(cmd, Mapping):
        return [(str(k), php_str(c)) for k, c in cmd.items()]
    return []


def inner_methods(params: Mapping[str, Any]) -> list[str]:
    """The method of every command of a batch request (for logging and fault matching)."""
    return [split_command(c)[0] for _, c in parse_commands(param(params, "cmd"))]


def _parts(match: re.Match[str]) -> list[str]:
    raw = match.group(1) if match.group(1) is not None else unquote(match.group(2))
    return _PART.findall(raw)


def _resolve(parts: list[str], results: Mapping[str, Any]) -> tuple[bool, Any]:
    if not parts or parts[0] not in results:
        return False, None
    value = results[parts[0]]
    for part in parts[1:]:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def _inline(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(php_str(v) for v in value)
    return "" if isinstance(value, Mapping) else php_str(value)


def substitute(query: str, results: Mapping[str, Any]) -> str:
    """Replace references in a raw command query by earlier results, URL-encoded.

    A reference that is a whole parameter value and points at an array/object expands into
    bracket keys (``ids=$result[x]`` -> ``ids[0]=..&ids[1]=..``).  An unresolvable reference
    (unknown or failed command, missing key) becomes an empty string.
    """
    if not query or "result" not in query:
        return query
    out: list[str] = []
    for pair in query.split("&"):
        key, eq, value = pair.partition("=")
        whole = _REF.fullmatch(value)
        if eq and whole:
            found, resolved = _resolve(_parts(whole), results)
            if found and isinstance(resolved, (list, Mapping)):
                out.append(build_query({unquote_plus(key): resolved}) or f"{key}=")
                continue
        out.append(key + eq + _REF.sub(
            lambda m: quote_plus(_inline(_resolve(_parts(m), results)[1])), value))
    return "&".join(out)


def _command_fault_error(fault: Fault) -> EmuError:
    return EmuError(int(fault.opts.get("status", 400)), str(fault.opts.get("code", "ERROR_CORE")),
                    str(fault.opts.get("description", "Injected command error")))


def run_batch(params: Mapping[str, Any], invoke: Invoke, take_fault: TakeFault,
              tz: timezone) -> dict[str, Any]:
    """Run the commands in order and build the ``result`` object of the batch reply."""
    commands = parse_commands(param(params, "cmd"))
    halt = php_truthy(param(params, "halt", 0))
    sections: dict[str, dict[str, Any]] = {
        k: {} for k in ("result", "result_error", "result_total", "result_next", "result_time")
    }
    for index, (name, command) in enumerate(commands):
        start = time.time()
        try:
            if index >= MAX_COMMANDS:
                raise EmuError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
            method, query = split_command(command)
            if method == "batch":
                raise EmuError(405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method 'batch' is not allowed in batch")
            fault = take_fault(method)
            if fault is not None:
                raise _command_fault_error(fault)
            reply = invoke(method, parse_query(substitute(query, sections["result"])))
        except EmuError as exc:
            sections["result_error"][name] = exc.body()
            if halt:
                break
            continue
        sections["result"][name] = reply.value
        if reply.total is not None:
            sections["result_total"][name] = reply.total
        if reply.next is not None:
            sections["result_next"][name] = reply.next
        sections["result_time"][name] = time_block(start, time.time(), tz)
    return {key: php_array(section) for key, section in sections.items()}
