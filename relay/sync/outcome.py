"""How a job ended a round (:class:`Outcome`), and packing commands into batches of 50."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from relay.errors import RelayError
from relay.models import Job, LinkFact
from relay.portal.client import PortalClient
from relay.portal.protocol import MAX_BATCH, BatchReply, Command

T = TypeVar("T")


@dataclass
class Outcome:
    """How one job ended this round; the worker turns it into a queue transition."""

    job: Job
    status: str = "done"  # done | skipped | failed
    outcome: str = ""
    target_deal_id: str | None = None
    error: BaseException | None = None
    notify: dict[str, Any] | None = None
    deal: dict[str, Any] | None = None  # the source deal as read (for failure notices)
    payload: dict[str, Any] | None = None  # notify jobs: payload with the parts already done
    link: LinkFact | None = None  # what the target now holds for this deal
    forget_creating: bool = False  # the target certainly created nothing: drop the "creating" mark
    link_lost: bool = False  # the linked target deal is gone: look the deal up by its stamp next time
    unlink: bool = False  # the target deal was deleted on purpose: forget the link
    files: str | None = None  # print of the source files now on the target deal



def pack(items: Sequence[T], weight: Callable[[T], int], limit: int = MAX_BATCH) -> Iterator[list[T]]:
    """Consecutive groups whose total weight (batch commands) stays within ``limit``."""
    group: list[T] = []
    used = 0
    for item in items:
        w = weight(item)
        if group and used + w > limit:
            yield group
            group, used = [], 0
        group.append(item)
        used += w
    if group:
        yield group


def read_batches(client: PortalClient, cmds: Mapping[str, tuple[Command, list[T]]],
                 fail: Callable[[list[T], RelayError], None]) -> Iterable[tuple[str, BatchReply, list[T]]]:
    """Send read commands 50 a ``batch``; yield (name, reply, items) of those answered; a failed request
    or command hands its items to ``fail`` with the error."""
    names = list(cmds)
    for start in range(0, len(names), MAX_BATCH):
        part = names[start:start + MAX_BATCH]
        try:
            reply = client.batch({n: cmds[n][0] for n in part}, write=False)
        except RelayError as exc:
            for n in part:
                fail(cmds[n][1], exc)
            continue
        for n in part:
            if n in reply.errors:
                fail(cmds[n][1], reply.errors[n])
            else:
                yield n, reply, cmds[n][1]
