"""Pure: keep secrets (webhook secrets, tokens, robot keys) out of every text we emit.

An inbound-webhook URL is ``https://<portal>/rest/<USER_ID>/<SECRET>/<method>`` —
``local-integrations/local-webhooks.md``; the ``<SECRET>`` part is replaced by ``***``.
"""

from __future__ import annotations

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


def configure_logging(level: str = "INFO") -> None:
    """Send logs to stderr through the redacting formatter (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in root.handlers:
        if isinstance(handler.formatter, RedactingFormatter):
            return
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
