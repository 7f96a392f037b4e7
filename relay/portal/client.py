"""The one seam to Bitrix24: an HTTP client per portal with pacing, retries and redaction.

Only this module imports ``requests`` and ``tenacity``.  Every request goes through the portal's
:class:`~relay.portal.pacer.Pacer`.  The in-call retry policy (declared once, in :meth:`PortalClient._policy`):

* 503 ``QUERY_LIMIT_EXCEEDED`` and 429 ``OPERATION_TIME_LIMIT`` are refused *before* running, so
  any call may be resent — ``limits.md``;
* network errors and 5xx are resent only for calls that cannot create anything (``write=False``);
  a write whose reply is lost raises :class:`~relay.errors.ReplyLost` and is never resent here:
  the pipeline first looks up what it may have created.

Calls are ``POST <webhook><method>.json`` with a JSON body, redirects not followed automatically
(a renamed portal answers 302; the POST is re-sent to the new host once) —
``settings/how-to-call-rest-api/general-principles.md``, ``settings/how-to-call-rest-api/change-domen.md``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

from relay import __version__, metrics
from relay.errors import (
    AuthError,
    NetworkError,
    OperationTimeLimit,
    PermanentError,
    QueryLimitExceeded,
    ReplyLost,
    ServerError,
)
from relay.portal.pacer import Pacer
from relay.portal.protocol import BatchReply, Command, batch_params, decode_batch, decode_reply
from relay.redact import redact_url

log = logging.getLogger(__name__)


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly did not reach the server (connect failed)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    text = repr(exc.args)
    return "NewConnectionError" in text or "Connection refused" in text or "NameResolutionError" in text


#: ``auth_connector`` of an application source's calls and offline bindings: changes the relay itself
#: makes are not queued back to it (``api-reference/events/offline-events.md``)
CONNECTOR = "b24relay"


class Credentials(Protocol):
    """How requests to a portal are authorised: an inbound webhook, or an application's OAuth tokens."""

    def endpoint(self) -> tuple[str, str | None]:
        """(base URL ending in ``/``, access token to send as ``auth`` or None)."""

    def refresh(self, stale: str) -> None:
        """The portal answered ``expired_token`` for ``stale``: get a fresh token (one refresh in flight)."""


@dataclass(frozen=True)
class Webhook:
    """An inbound webhook URL ``https://<portal>/rest/<user>/<secret>/``: the secret is the credential."""

    url: str

    def endpoint(self) -> tuple[str, str | None]:
        return (self.url if self.url.endswith("/") else self.url + "/"), None

    def refresh(self, stale: str) -> None:
        raise AuthError("expired_token", "a webhook has no token to refresh")


def oauth_token(server: str, params: Mapping[str, str], timeout: float = 30.0) -> dict[str, Any]:
    """``GET <server>/oauth/token/`` (``settings/oauth/auto-renewal.md``): the new token pair, or the
    auth server's error as AuthError (``invalid_grant``: the refresh token is spent or expired)."""
    url = server.rstrip("/") + "/oauth/token/"
    try:
        resp = requests.get(url, params=dict(params), timeout=(3.05, timeout), allow_redirects=False,
                            headers={"User-Agent": f"b24relay/{__version__}", "Accept": "application/json"})
    except requests.RequestException as exc:
        raise NetworkError(f"OAuth server: {type(exc).__name__}") from None
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code == 200 and isinstance(body, dict) and body.get("access_token") and body.get("refresh_token"):
        return body
    code = str(body.get("error", "")) if isinstance(body, dict) else ""
    text = str(body.get("error_description", "")) if isinstance(body, dict) else ""
    if resp.status_code >= 500 and not code:
        raise ServerError("", f"OAuth server answered HTTP {resp.status_code}", method="oauth/token")
    raise AuthError(code or "invalid_reply", text or f"OAuth server answered HTTP {resp.status_code}",
                    method="oauth/token", status=resp.status_code)


class PortalClient:
    """Calls one portal (inbound webhook or application tokens); thread-safe; shares its pacer."""

    def __init__(
        self,
        name: str,
        webhook_url: str | Credentials,
        pacer: Pacer,
        *,
        timeout: tuple[float, float] = (3.05, 30.0),
        attempts: int = 4,
        backoff: float = 0.5,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self.name = name
        self._creds: Credentials = Webhook(webhook_url) if isinstance(webhook_url, str) else webhook_url
        self.pacer = pacer
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._max_wait = max_wait
        self._sleep = sleep
        self._local = threading.local()
        self._session = session
        self._count_lock = threading.Lock()
        self.requests_sent = 0

    # --- transport -------------------------------------------------------------------------

    def _http(self) -> requests.Session:
        if self._session is not None:
            return self._session
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update({"User-Agent": f"b24relay/{__version__}", "Accept": "application/json"})
            self._local.session = session
        return session

    def _post(self, method: str, params: Mapping[str, Any], *, write: bool, inner: tuple[str, ...]) -> dict[str, Any]:
        base, token = self._creds.endpoint()
        try:
            return self._send(base, token, method, params, write=write, inner=inner)
        except AuthError as exc:
            if token is None or exc.code.lower() != "expired_token":
                raise
        self._creds.refresh(token)  # Bitrix24 refused the call before running it: send it again
        base, token = self._creds.endpoint()
        return self._send(base, token, method, params, write=write, inner=inner)

    def _send(self, base: str, token: str | None, method: str, params: Mapping[str, Any], *, write: bool,
              inner: tuple[str, ...]) -> dict[str, Any]:
        waited = time.monotonic()
        self.pacer.acquire(method, *inner)
        metrics.PACER_WAIT.labels(self.name).inc(time.monotonic() - waited)
        url = f"{base}{method}.json"
        if token is not None:  # an application: its own writes are marked so they do not come back as events
            params = {**params, "auth": token, "auth_connector": CONNECTOR}
        with self._count_lock:
            self.requests_sent += 1
        try:
            resp = self._http().post(url, json=params, timeout=self._timeout, allow_redirects=False)
            if resp.status_code in (301, 302, 307, 308) and resp.headers.get("Location"):
                moved = urljoin(url, resp.headers["Location"])
                log.warning("%s moved: %s -> %s", self.name, redact_url(url), redact_url(moved))
                resp = self._http().post(moved, json=params, timeout=self._timeout, allow_redirects=False)
        except requests.RequestException as exc:
            kind = type(exc).__name__
            if write and not _never_sent(exc):
                raise ReplyLost(f"{method} on {self.name}: no reply ({kind}); "
                                "the write may have been applied") from None
            raise NetworkError(f"{method} on {self.name}: {kind}") from None
        metrics.REQUESTS.labels(self.name, method, str(resp.status_code)).inc()
        try:
            return decode_reply(resp.status_code, resp.content, method=method)
        except QueryLimitExceeded:
            self.pacer.penalize()
            raise
        except OperationTimeLimit as exc:
            now = self.pacer.wall_time()
            until = exc.reset_at if exc.reset_at else now + 60
            self.pacer.hold(method, until)
            exc.retry_after = max(0.0, until - now)
            raise

    # --- policy ----------------------------------------------------------------------------

    def _retryable(self, write: bool) -> Callable[[BaseException], bool]:
        def decide(exc: BaseException) -> bool:
            if isinstance(exc, QueryLimitExceeded):
                return True
            if isinstance(exc, OperationTimeLimit):
                return (exc.retry_after or 0.0) <= self._max_wait
            if write or isinstance(exc, ReplyLost):
                return False
            return isinstance(exc, (NetworkError, ServerError))

        return decide

    def _policy(self, write: bool) -> Retrying:
        return Retrying(
            retry=retry_if_exception(self._retryable(write)),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._backoff, max=self._max_wait) + wait_random(0, self._backoff),
            sleep=self._sleep,
            reraise=True,
        )

    # --- API -------------------------------------------------------------------------------

    def call(self, method: str, params: Mapping[str, Any] | None = None, *, write: bool = False) -> Any:
        """Call ``method`` and return its ``result``; ``write=True`` for calls that change data."""
        payload = self.call_raw(method, params, write=write)
        return payload["result"]

    def call_raw(self, method: str, params: Mapping[str, Any] | None = None, *, write: bool = False) -> dict[str, Any]:
        """Call ``method`` and return the whole decoded reply (``result``, ``total``, ``next``, ``time``)."""
        return self._policy(write)(self._post, method, dict(params or {}), write=write, inner=())

    def batch(self, commands: Mapping[str, Command], *, write: bool, halt: bool = False) -> BatchReply:
        """Run up to 50 commands in one request; per-command errors come back in the reply."""
        inner = tuple(sorted({c.method for c in commands.values()}))
        params = batch_params(commands, halt=halt)
        payload = self._policy(write)(self._post, "batch", params, write=write, inner=inner)
        return decode_batch(payload, commands)

    def download(self, url: str, max_bytes: int, *, headers: dict[str, str] | None = None) -> bytes | None:
        """GET a signed file link of this portal (``urlMachine``); None when the file is over ``max_bytes``.

        The link carries a token: it is fetched only from the webhook's own scheme, host and port (else
        :class:`~relay.errors.PermanentError`), never logged, redirects are not followed, and reading stops
        one chunk after ``max_bytes``.  ``headers``, when given, receives the reply's headers
        (``Content-Disposition`` names the file).  Sends ``User-Agent``, ``Accept``, ``Accept-Language`` and
        ``Referer`` — ``api-reference/files/how-to-upload-files.md`` ("Response Content"),
        ``settings/how-to-call-rest-api/general-principles.md`` ("Request Headers")."""
        method = "crm.controller.item.getFile"

        def origin(link: str) -> tuple[str, str, int] | None:
            parts = urlsplit(link)
            try:
                port = parts.port or {"http": 80, "https": 443}[parts.scheme.lower()]
            except (ValueError, KeyError):
                return None
            odd = not link.isprintable() or " " in link or "\\" in link or "@" in parts.netloc
            return None if odd else (parts.scheme.lower(), (parts.hostname or "").lower(), port)

        if origin(url) is None or origin(url) != origin(self._creds.endpoint()[0]):
            raise PermanentError(f"{method} on {self.name}: refused a link that does not point at the webhook's portal")
        referer = "{0.scheme}://{0.netloc}/".format(urlsplit(url))
        sent = {"User-Agent": f"b24relay/{__version__}", "Accept": "*/*", "Accept-Language": "en-US,en;q=0.9",
                "Referer": referer}

        def fetch() -> bytes | None:
            self.pacer.acquire(method)
            with self._count_lock:
                self.requests_sent += 1
            data = bytearray()
            try:
                with self._http().get(url, headers=sent, timeout=self._timeout, allow_redirects=False,
                                      stream=True) as resp:
                    if headers is not None:
                        headers.update(resp.headers)
                    ok = resp.status_code == 200
                    limit = max_bytes if ok else 64 * 1024  # of an error reply, its start is enough
                    size = resp.headers.get("Content-Length", "")
                    if ok and size.isdigit() and int(size) > max_bytes:
                        return None  # announced as too large: not read at all
                    for chunk in resp.iter_content(min(64 * 1024, limit + 1)):
                        data += chunk
                        if len(data) > limit:
                            break
            except requests.RequestException as exc:
                raise NetworkError(f"{method} on {self.name}: {type(exc).__name__}") from None
            if resp.status_code >= 400:
                decode_reply(resp.status_code, bytes(data), method=method)  # raises the typed error
            if not ok:
                raise PermanentError(f"{method} on {self.name}: HTTP {resp.status_code}, redirects are not followed")
            return None if len(data) > max_bytes else bytes(data)

        return self._policy(False)(fetch)
