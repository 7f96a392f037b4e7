"""Extra copies of one source deal on the target: found after a create, the oldest kept.

A create whose reply was lost, a create slower than the wait for it, or two relays with separate
databases working at once can leave two target deals carrying one stamp.  Once any slower create
could have landed (``target.timeout`` + ``target.create_margin`` after a create), the stamps of fresh
creates are looked up again (:mod:`relay.sync.find`, 1,250 a request).  The oldest copy (lowest
``ID``) is kept — every relay picks the same one — and the others are deleted with ``crm.deal.delete``
(``target.duplicates: delete``) or only reported (``report``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from relay.config import RelayConfig
from relay.errors import NotFound, RelayError
from relay.models import Link
from relay.portal.client import PortalClient
from relay.portal.protocol import BatchReply, Command
from relay.sync import find
from relay.sync.outcome import pack

log = logging.getLogger(__name__)
Key = tuple[str, str]


def report(source_id: str, deal_id: str, extra: str, fate: str, kept: str | None) -> None:
    """Log one extra copy (a warning: someone may want to look at it)."""
    log.warning("source deal %s/%s had an extra copy on the target: #%s (%s); kept #%s", source_id, deal_id,
                extra, fate, kept)


def deleted(reply: BatchReply, name: str, extra: str) -> bool:
    """Whether the ``crm.deal.delete`` command ``name`` removed the copy (or it was gone already)."""
    try:
        reply.get(name)
    except NotFound:
        return True  # someone (another relay) removed it first
    except RelayError as exc:
        log.warning("could not delete extra copy #%s: %s", extra, exc)
        return False
    return True


def check(config: RelayConfig, target: PortalClient, links: Sequence[Link]) -> dict[Key, str | None]:
    """Look for extra target copies of these freshly created deals; keep the oldest, delete (or report)
    the others.  Returns, per checked deal, the target deal to link to (None: unchanged); deals whose
    check or deletion failed are left out, so their check comes due again."""
    wanted: list[tuple[Link, find.Wanted]] = []
    for lk in links:
        source, spec = config.source(lk.source_id), config.mappings.get(lk.source_id)
        if source is not None and spec is not None:
            wanted.append((lk, find.Wanted((lk.source_id, lk.deal_id), spec.link_field, source.link_prefix)))
    found = find.find(target, [w for _lk, w in wanted])
    results: dict[Key, str | None] = {}
    extras: list[tuple[Key, str]] = []
    delete = config.target.duplicates == "delete"
    for lk, w in wanted:
        hits = found.get(w.key)
        if isinstance(hits, RelayError) or hits is None:
            continue
        keep = hits[0] if hits else lk.target_deal_id
        results[w.key] = keep if keep != lk.target_deal_id else None
        for extra in hits[1:]:
            report(lk.source_id, lk.deal_id, extra, config.target.duplicates, keep)
            if delete:
                extras.append((w.key, extra))
    for group in pack(extras, lambda _item: 1):
        cmds = {f"x{n}": Command("crm.deal.delete", {"id": extra}) for n, (_key, extra) in enumerate(group)}
        try:
            reply = target.batch(cmds, write=True)
        except RelayError as exc:
            log.warning("could not delete %d extra copies: %s (checked again later)", len(group), exc)
            for key, _extra in group:
                results.pop(key, None)
            continue
        for n, (key, extra) in enumerate(group):
            if not deleted(reply, f"x{n}", extra):
                results.pop(key, None)
    return results
