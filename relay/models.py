"""Small frozen records shared by ingress, store and worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

JobKind = Literal["sync", "notify"]
JobStatus = Literal["pending", "running", "done", "skipped", "dead", "merged"]
#: what a finished sync job learned of its target deal: (target deal id, fingerprint written or None,
#: source DATE_MODIFY, seconds until the check for extra copies or None)
LinkFact = tuple[str, str | None, str | None, float | None]


@dataclass(frozen=True)
class Job:
    """A queued unit of work: sync one source deal to the target, or tell the source about it."""

    id: int
    kind: str
    source_id: str
    deal_id: str
    status: str
    attempts: int = 0
    events: int = 1
    trigger: str = ""
    event_token: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None
    target_deal_id: str | None = None
    last_error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    available_at: float = 0.0

    @property
    def event_tokens(self) -> list[str]:
        """Every application-robot ``event_token`` merged into this job, oldest first (each gets
        exactly one ``bizproc.event.send``)."""
        return [t for t in (self.event_token or "").split("\n") if t]


@dataclass(frozen=True)
class Link:
    """What the relay knows of a source deal on the target.

    ``state`` is ``creating`` from just before a create is sent until its result is recorded: a
    link found in that state means an earlier attempt may have created the deal, so the target is
    searched by its stamp before anything is created again.  ``lost``: the linked target deal was
    gone at the last write; the next attempt looks for another copy by the stamp (none: dead).
    """

    source_id: str
    deal_id: str
    state: str
    target_deal_id: str | None = None
    fingerprint: str | None = None
    source_modified: str | None = None  # the source deal's DATE_MODIFY when last relayed
    updated_at: float = 0.0  # for ``creating``: when the create was sent
    files: str | None = None  # print of the source files last sent with the deal


@dataclass(frozen=True)
class Enqueued:
    """Result of storing a handler call."""

    job_id: int
    merged: bool


@dataclass(frozen=True)
class Transition:
    """How a leased job leaves the worker: ``status`` done | skipped | dead | pending (retry)."""

    job: Job
    status: str
    outcome: str | None = None
    target_deal_id: str | None = None
    error: str | None = None
    delay: float = 0.0  # retry: seconds until the job is ready again
    payload: dict[str, Any] | None = None  # replaces the job's payload (notify parts done)
    notify: list[dict[str, Any]] | dict[str, Any] | None = None  # queue notify job(s) for the same deal
    link: LinkFact | None = None
    forget_creating: bool = False  # drop the deal's "creating" mark
    link_lost: bool = False  # the linked target deal is gone: look the deal up by its stamp next time
    unlink: bool = False  # forget the deal's link (its target deal was deleted by the relay)
    files: str | None = None  # print of the source files now on the target deal (relay.mapping.files)
