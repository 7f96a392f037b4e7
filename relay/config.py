"""``relay.yaml``: the target portal, the partner (source) portals, and tuning — validated at start.

Example (every key): ``config/relay.example.yaml``.  ``${VAR}`` / ``${VAR:-default}`` placeholders
are filled from the environment and ``.env``; errors name the file, the key path and the line.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from relay.errors import ConfigError
from relay.mapping.deal import MappingSpec, load_mapping
from relay.mapping.onec import OneCMappingSpec, load_onec_mapping
from relay.sync import notices
from relay.yamlconf import load_yaml, raise_problems, validate

_WEBHOOK = re.compile(r"^https?://[^/\s]+(/[^\s]*)?/rest/\d+/[^/\s]+/?$")


def _fernet_key(text: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(text.encode())) == 32
    except (ValueError, binascii.Error):
        return False


def _webhook(value: SecretStr) -> SecretStr:
    url = value.get_secret_value().strip()
    if not _WEBHOOK.match(url):
        raise ValueError("must be an inbound webhook URL like https://portal.bitrix24.com/rest/1/SECRET/")
    return SecretStr(url if url.endswith("/") else url + "/")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Model):
    """Bitrix24's leaky bucket for one portal: 2/s and 50 by default, 5/s and 250 on Enterprise."""

    rate: Annotated[float, Field(gt=0, le=100)] = 2.0
    burst: Annotated[int, Field(ge=1, le=10_000)] = 50


def url_host(url: SecretStr | str | None) -> str:
    """The host of a portal URL, never its secret path (``""`` when it has none)."""
    text = url.get_secret_value() if isinstance(url, SecretStr) else (url or "")
    try:
        return urlsplit(text).hostname or ""
    except ValueError:
        return ""


class TargetConfig(_Model):
    """The ESB portal deals are relayed to."""

    webhook_url: SecretStr
    limits: Limits = Limits()
    timeout: Annotated[float, Field(gt=0, le=60)] = 30.0
    #: after a create whose reply was lost, wait ``timeout`` + this long before deciding it never landed
    create_margin: Annotated[float, Field(ge=0, le=3600)] = 60.0
    #: what to do with extra copies of one source deal found on the target: keep the oldest and
    #: delete the others, or only report them
    duplicates: Literal["delete", "report"] = "delete"

    @property
    def settle_seconds(self) -> float:
        """How long a sent create may still land on the target."""
        return self.timeout + self.create_margin

    @property
    def host(self) -> str:
        """The portal's host (from the webhook URL; links to its records use it)."""
        return url_host(self.webhook_url)

    _check_url = field_validator("webhook_url")(_webhook)


class SourceConfig(_Model):
    """One partner portal: how to read it, how to authenticate its calls, which mapping it uses.

    ``mode: webhook`` (default): the relay calls the portal through ``webhook_url`` and takes outgoing
    webhook events and "Webhook" robot calls.  ``mode: app``: the portal installs the relay as a local
    server-side application (``client_id``/``client_secret`` from the portal's "Developer resources");
    the relay calls it with the OAuth tokens it got at install, at ``https://<domain>/rest/``."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    mode: Literal["webhook", "app"] = "webhook"
    #: mode app: where the portal answers REST calls, default https://<domain>/ (set it only for a proxy
    #: or a local emulator); never taken from a request
    portal_url: Annotated[str | None, Field(pattern=r"^https?://[^\s/]+/?$")] = None
    webhook_url: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    application_token: SecretStr | None = None
    robot_key: SecretStr | None = None
    member_id: str | None = None
    domain: str | None = None
    mapping: Path
    limits: Limits = Limits()
    timeout: Annotated[float, Field(gt=0, le=60)] = 30.0
    #: the language of the comments, notifications and robot answers on this portal
    language: Literal["ru", "uk", "en"] = "ru"
    #: texts replacing the defaults, by name (relay.sync.notices.PLACEHOLDERS: names and their placeholders)
    messages: dict[str, str] = {}
    #: alert notify.integrator_user_id once when this source, which usually calls, sends no call for this
    #: many seconds (None: never)
    quiet_after: Annotated[float | None, Field(ge=1, le=90 * 86400)] = None

    @field_validator("webhook_url")
    @classmethod
    def _check_url(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _webhook(value)

    @field_validator("messages")
    @classmethod
    def _check_messages(cls, value: dict[str, str]) -> dict[str, str]:
        problems = [((name,), why) for name, text in value.items()
                    if (why := notices.template_problem(name, text)) is not None]
        raise_problems(problems, "messages")
        return value

    @model_validator(mode="after")
    def _mode_needs(self) -> SourceConfig:
        if self.mode == "webhook" and self.webhook_url is None:
            raise ValueError("webhook_url is required (the source's inbound webhook), or set mode: app")
        if self.mode == "app":
            missing = [k for k in ("client_id", "client_secret", "domain") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"mode: app needs {', '.join(missing)} (from the portal's local application; "
                                 "domain is the portal's address, e.g. partner.bitrix24.ua)")
        return self

    @field_validator("application_token", "robot_key", "member_id", "domain", "client_id", "client_secret",
                     "webhook_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return value.get_secret_value() if isinstance(value, SecretStr) else value

    @field_validator("application_token", "robot_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 8:
            raise ValueError("must be at least 8 characters (leave it out to disable this kind of call)")
        return value

    @property
    def names(self) -> dict[str, str]:
        """What mapping templates call ``{source.id}``, ``{source.domain}``, ``{source.member_id}``."""
        return {"id": self.id, "domain": self.domain or "", "member_id": self.member_id or ""}

    @property
    def host(self) -> str:
        """The portal's host: its ``domain``, else its webhook's host (never the secret path)."""
        return self.domain or url_host(self.webhook_url)

    @property
    def link_prefix(self) -> str:
        """Names this portal in link stamps: its member_id when pinned, else the source id."""
        return self.member_id or self.id

    @property
    def texts(self) -> notices.Texts:
        """This portal's messages: the defaults of ``language`` with ``messages`` over them."""
        return notices.Texts(self.language, self.messages)

    @property
    def rest_url(self) -> str:
        """mode app: the portal's REST base URL (``https://<domain>/rest/`` unless ``portal_url`` says)."""
        base = self.portal_url or f"https://{self.domain}/"
        return base.rstrip("/") + "/rest/"


class OneCBase(_Model):
    """One 1C:Enterprise base posting to ``/api/webhook/1c/...``: how its calls are recognised and mapped.

    Its calls carry ``token`` (header ``Authorization: Bearer``, ``X-Relay-Token``, or ``?key=``); a base
    whose modules cannot be changed yet may instead be allowed by address (``allow_ips``).  ``timezone``
    is the 1C server's (its dates carry none)."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    token: SecretStr | None = None
    allow_ips: tuple[str, ...] = ()
    mapping: Path
    timezone: str = "Europe/Kyiv"
    quiet_after: Annotated[float | None, Field(ge=1, le=90 * 86400)] = None  # alert when a busy base goes silent

    @field_validator("token", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return value

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (e.g. `openssl rand -hex 16`)")
        return value

    @field_validator("allow_ips")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (like 10.0.0.5 or 10.0.0.0/24)") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name like Europe/Kyiv)") from None
        return value

    @model_validator(mode="after")
    def _some_auth(self) -> OneCBase:
        if self.token is None and not self.allow_ips:
            raise ValueError("give a token (the module sends it) or allow_ips (for modules not changed yet)")
        return self

    @property
    def names(self) -> dict[str, str]:
        """What mapping templates call ``{source.id}`` (a 1C base has no domain nor member_id)."""
        return {"id": self.id, "domain": "", "member_id": ""}

    @property
    def link_prefix(self) -> str:
        """Names this base in link stamps (``ORIGINATOR_ID`` ``b24relay:1c.<id>``)."""
        return f"1c.{self.id}"

    def allows(self, address: str) -> bool:
        """True when ``address`` is in ``allow_ips``."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(n, strict=False) for n in self.allow_ips)


class IngressConfig(_Model):
    """The handler URL ``POST /b24/<source_id>``."""

    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 256 * 1024
    #: more fields (form fields, multipart parts, JSON values) get 400; PHP's max_input_vars is 1000
    max_fields: Annotated[int, Field(ge=50, le=100_000)] = 1000
    #: deeper bracket keys stay flat, deeper JSON gets 400; PHP's max_input_nesting_level is 64
    max_depth: Annotated[int, Field(ge=4, le=64)] = 16
    #: the 1C URLs: an invoice of 1,000 positions is about 300 KiB and 7,000 JSON values
    onec_max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    onec_max_fields: Annotated[int, Field(ge=50, le=1_000_000)] = 50_000


class WorkerConfig(_Model):
    """Queue and retry tuning."""

    #: attempts for unexpected errors (refusals, outages and network errors use ``retry_for``)
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    #: how long refusals (503/429), outages (5xx) and network errors are retried, in seconds
    retry_for: Annotated[float, Field(ge=60, le=90 * 86400)] = 3 * 86400.0
    backoff_base: Annotated[float, Field(gt=0, le=3600)] = 2.0
    backoff_max: Annotated[float, Field(gt=0, le=86400)] = 120.0
    lease_seconds: Annotated[float, Field(ge=1, le=3600)] = 120.0
    poll_interval: Annotated[float, Field(gt=0, le=60)] = 1.0
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 500
    linger: Annotated[float, Field(ge=0, le=5)] = 0.2
    threads: Annotated[int, Field(ge=1, le=32)] = 1


class CallsConfig(_Model):
    """The in-call retry policy of every Bitrix24 request (before the job's own backoff)."""

    attempts: Annotated[int, Field(ge=1, le=10)] = 4
    backoff: Annotated[float, Field(gt=0, le=60)] = 0.5
    max_wait: Annotated[float, Field(gt=0, le=600)] = 30.0


class SweepConfig(_Model):
    """The recovery sweep (deals whose events were lost, funnel moves)."""

    enabled: bool = True
    interval: Annotated[float, Field(ge=10, le=86400)] = 300.0
    overlap: Annotated[float, Field(ge=0, le=86400)] = 600.0
    lookback: Annotated[float, Field(ge=0, le=90 * 86400)] = 86400.0


class NotifyConfig(_Model):
    """What the relay tells people: the source after each transfer, the integrator when a job dies or a
    source goes quiet (``sources[].quiet_after``)."""

    comment: bool = True  # a timeline comment on the source deal after each transfer
    notify_user: bool = True  # a notification to the source deal's responsible user after each transfer
    failure_comment: bool = False  # also comment on the source deal when it fails for good
    integrator_user_id: Annotated[str | None, Field(pattern=r"^[1-9][0-9]{0,9}$")] = None  # target user alerted
    alert_quiet: Annotated[float, Field(ge=0, le=7 * 86400)] = 900.0  # at most one alert per source this often
    language: Literal["ru", "uk", "en"] = "ru"  # the language of the alerts on the target portal

    @field_validator("integrator_user_id", mode="before")
    @classmethod
    def _id_text(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None  # ${RELAY_INTEGRATOR_USER_ID:-} left empty
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class RelayFile(_Model):
    """The whole ``relay.yaml``."""

    target: TargetConfig
    sources: list[SourceConfig] = []
    onec: list[OneCBase] = []
    #: the relay's public address (https://relay.example.com): robot and event handlers of application
    #: sources are <public_url>/b24/<source id>; required when a source has mode: app
    public_url: Annotated[str | None, Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")] = None
    #: encrypts the OAuth tokens of application sources in the database: write ${RELAY_TOKEN_KEY} here
    #: (a Fernet key: `relay keygen`); required when a source has mode: app
    token_key: SecretStr | None = None
    #: the OAuth server that refreshes application tokens (Bitrix24's; https://oauth.bitrix24.tech/ for .ru)
    oauth_server: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")] = "https://oauth.bitrix.info/"
    ingress: IngressConfig = IngressConfig()
    worker: WorkerConfig = WorkerConfig()
    calls: CallsConfig = CallsConfig()
    sweep: SweepConfig = SweepConfig()
    notify: NotifyConfig = NotifyConfig()

    @model_validator(mode="after")
    def _unique_ids(self) -> RelayFile:
        if not self.sources and not self.onec:
            raise ValueError("nothing to relay: give sources (Bitrix24 portals), onec (1C bases), or both")
        if any(s.mode == "app" for s in self.sources) and self.public_url is None:
            raise ValueError("public_url is required when a source has mode: app (the robot and the events call "
                             "<public_url>/b24/<source id>)")
        if any(s.mode == "app" for s in self.sources) and self.token_key is None:
            raise ValueError("token_key is required when a source has mode: app (token_key: ${RELAY_TOKEN_KEY}; "
                             "make one with `relay keygen`)")
        if self.token_key is not None and not _fernet_key(self.token_key.get_secret_value()):
            raise ValueError("token_key must be a Fernet key (44 characters of URL-safe base64): `relay keygen`")
        ids = [s.id for s in self.sources] + [b.id for b in self.onec]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"source and 1C base ids must be unique, repeated: {', '.join(dupes)}")
        return self


@dataclass(frozen=True)
class RelayConfig:
    """A validated ``relay.yaml`` together with each source's loaded mapping."""

    file: RelayFile
    mappings: Mapping[str, MappingSpec]
    path: Path
    onec_mappings: Mapping[str, OneCMappingSpec] = field(default_factory=dict)

    @property
    def target(self) -> TargetConfig:
        return self.file.target

    def source(self, source_id: str) -> SourceConfig | None:
        """The source with this id, or None."""
        return next((s for s in self.file.sources if s.id == source_id), None)

    def onec_base(self, base_id: str) -> OneCBase | None:
        """The 1C base with this id, or None."""
        return next((b for b in self.file.onec if b.id == base_id), None)

    def secrets(self) -> list[str]:
        """Every secret value in the configuration (for log redaction)."""
        out = [self.file.target.webhook_url.get_secret_value()]
        for s in self.file.sources:
            out += [v.get_secret_value() for v in (s.webhook_url, s.application_token, s.robot_key, s.client_secret)
                    if v is not None]
        out += [b.token.get_secret_value() for b in self.file.onec if b.token is not None]
        out += [self.file.token_key.get_secret_value()] if self.file.token_key is not None else []
        for url in list(out):
            parts = url.rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2].isdigit():
                out.append(parts[-1])  # the bare webhook secret
        return out


def load_config(path: Path, env: Mapping[str, str]) -> RelayConfig:
    """Load and validate ``relay.yaml`` and every mapping it names (relative to its folder)."""
    loaded = load_yaml(path, env)
    file = validate(RelayFile, loaded)
    mappings: dict[str, MappingSpec] = {}
    for src in file.sources:
        mpath = src.mapping if src.mapping.is_absolute() else (path.parent / src.mapping)
        if not mpath.is_file():
            line = loaded.lines.get(("sources", file.sources.index(src), "mapping"))
            where = f" (line {line})" if line else ""
            raise ConfigError(f"{path}: sources[{file.sources.index(src)}].mapping{where}: no such file {mpath}")
        mappings[src.id] = load_mapping(mpath, env)
    onec: dict[str, OneCMappingSpec] = {}
    for n, base in enumerate(file.onec):
        mpath = base.mapping if base.mapping.is_absolute() else (path.parent / base.mapping)
        if not mpath.is_file():
            line = loaded.lines.get(("onec", n, "mapping"))
            where = f" (line {line})" if line else ""
            raise ConfigError(f"{path}: onec[{n}].mapping{where}: no such file {mpath}")
        onec[base.id] = load_onec_mapping(mpath, env)
    return RelayConfig(file=file, mappings=mappings, path=path, onec_mappings=onec)
