"""Pure: keep secrets (webhook secrets, tokens, robot keys) out of every text we emit.

An inbound-webhook URL is ``https://<portal>/rest/<USER_ID>/<SECRET>/<method>`` —
``local-integrations/local-webhooks.md``; the ``<SECRET>`` part is replaced by ``***``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable

MASK = "***"
_WEBHOOK = re.compile(r"(/rest/\d+/)([^/\s?#\"']+)")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:key|token|auth|application_token)=)[^&\s\"']+")


def redact_url(url: str) -> str:
    """Hide the secret path segment of a webhook URL and secret query parameters."""
    return _QUERY_SECRET.sub(r"\1" + MASK, _WEBHOOK.sub(r"\1" + MASK, url))


class Redactor:
    """Replaces every registered secret, any webhook secret and secret query values by ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Register more secret strings (ignored when shorter than 4 characters)."""
        with self._lock:
            merged = set(self._secrets) | {s for s in secrets if s and len(s) >= 4}
            self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret masked."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return redact_url(text)


#: the process-wide redactor; the CLI and the app factory register the configured secrets
REDACTOR = Redactor()


class RedactingFormatter(logging.Formatter):
    """A log formatter whose output, tracebacks included, has passed through :data:`REDACTOR`."""

    def format(self, record: logging.LogRecord) -> str:
        return REDACTOR(super().format(record))


class JsonFormatter(RedactingFormatter):
    """One JSON object per line (``RELAY_LOG_FORMAT=json``): ``time``, ``level``, ``logger``, ``message``,
    ``exception`` when there is one, and any ``source``/``job``/``deal``/``target`` given as ``extra``;
    redacted like the text format."""

    FIELDS = ("source", "job", "deal", "target")

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname, "logger": record.name, "message": REDACTOR(record.getMessage())}
        for name in self.FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = REDACTOR(str(value))
        if record.exc_info:
            out["exception"] = REDACTOR(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message in place so that every handler sees it redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = REDACTOR(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


#: libraries whose debug logs print request URLs (webhook secrets): kept at WARNING
QUIET_LOGGERS = ("urllib3", "requests")


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send logs to stderr through the redacting formatter, text or JSON lines (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in root.handlers:
        if isinstance(handler.formatter, RedactingFormatter):
            return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt.lower() == "json"
                         else RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
