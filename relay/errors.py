"""The one exception tree of b24relay; a class decides what happens next.

    RelayError
    ├── ConfigError               bad relay.yaml / mapping file: refuse to start (names file, key, line)
    ├── IngressError              reject a handler call with ``status`` (nothing stored)
    │   ├── BadRequest            400  malformed body, missing deal id
    │   ├── Forbidden             403  wrong or missing token / robot key, pinned portal mismatch
    │   ├── UnknownSource         404  no source with that id
    │   └── PayloadTooLarge       413  body over ``ingress.max_body_bytes``
    ├── TransientError            retry the job later with backoff
    │   ├── NetworkError          connection refused/reset, timeout: the request may not have arrived
    │   │   └── ReplyLost         a *write* was sent but no reply came back: it may have been applied
    │   ├── ServerError           HTTP 5xx (INTERNAL_SERVER_ERROR, ...), OVERLOAD_LIMIT
    │   ├── QueryLimitExceeded    503 QUERY_LIMIT_EXCEEDED: rejected before running, safe to resend
    │   └── OperationTimeLimit    429 OPERATION_TIME_LIMIT: rejected before running; ``reset_at``
    └── PermanentError            dead-letter the job with the reason; a human must act
        ├── AuthError             NO_AUTH_FOUND, INVALID_CREDENTIALS, ACCESS_DENIED, insufficient_scope
        ├── NotFound              "Not found" (HTTP 400 with an empty code), NOT_FOUND, OWNER_NOT_FOUND
        ├── ValidationError       any other Bitrix24 refusal (empty code, ERROR_CORE, ...)
        ├── MappingError          the mapping cannot translate this deal (missing map value, ...)
        └── TargetMisconfigured   the target lacks what exactly once needs (the link field); also a
                                  ConfigError: ``relay serve`` / ``relay worker`` refuse to start

Bitrix24 replies become :class:`ApiError` subclasses (``code``, ``description``, ``method``,
``status``), combined with the transient/permanent branch that fits them.  Messages never hold
secrets: the REST client redacts webhook URLs before it raises.
"""

from __future__ import annotations


class RelayError(Exception):
    """Root of every error b24relay raises on purpose."""


class ConfigError(RelayError):
    """Configuration or mapping file is invalid; the message names file, key path and line."""


# --- ingress -------------------------------------------------------------------------------------


class IngressError(RelayError):
    """A handler call is refused; ``status`` is the HTTP status to answer with."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(IngressError):
    status = 400


class Unauthorized(IngressError):
    status = 401


class Forbidden(IngressError):
    status = 403


class UnknownSource(IngressError):
    status = 404


class PayloadTooLarge(IngressError):
    status = 413


# --- job outcomes --------------------------------------------------------------------------------


class TransientError(RelayError):
    """Worth retrying later; the job goes back to the queue with backoff."""

    #: seconds to wait at least before the next attempt (None: the queue's backoff decides)
    retry_after: float | None = None


class PermanentError(RelayError):
    """Retrying cannot help; the job is dead-lettered with this message as the reason."""


class NetworkError(TransientError):
    """No usable reply: connection failed or timed out."""


class ReplyLost(NetworkError):
    """A request that writes was sent but its reply was lost: it may or may not have run."""


class MappingError(PermanentError):
    """The integrator's mapping cannot translate this deal."""


class TargetMisconfigured(ConfigError, PermanentError):
    """The target portal lacks what the configuration relies on (e.g. the mapping's link field)."""


class ApiError(RelayError):
    """A decoded Bitrix24 error reply (or one ``result_error`` entry of a batch)."""

    def __init__(
        self,
        code: str,
        description: str,
        *,
        method: str = "",
        status: int | None = None,
        command: str | None = None,
    ) -> None:
        self.code = code
        self.description = description
        self.method = method
        self.status = status
        self.command = command
        where = f"{method}: " if method else ""
        what = f"{code} " if code else ""
        http = f" (HTTP {status})" if status else ""
        super().__init__(f"{where}{what}{description}{http}".strip())


class ServerError(ApiError, TransientError):
    """Bitrix24 answered 5xx or an overload error."""


class QueryLimitExceeded(ApiError, TransientError):
    """503 QUERY_LIMIT_EXCEEDED: the portal's leaky bucket is full. — limits.md"""


class OperationTimeLimit(ApiError, TransientError):
    """429 OPERATION_TIME_LIMIT: this method's time budget is used up. — limits.md"""

    def __init__(self, *args: object, reset_at: float | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.reset_at = reset_at


class AuthError(ApiError, PermanentError):
    """The webhook is wrong, expired, or lacks a scope or a permission."""


class NotFound(ApiError, PermanentError):
    """The entity does not exist (legacy CRM: HTTP 400, empty code, "Not found")."""


class ValidationError(ApiError, PermanentError):
    """Bitrix24 refused the call's parameters."""
