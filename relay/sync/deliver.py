"""Close the loop: send notify jobs (comments, notifications, robot answers, alerts), exactly once.

Parts already sent are listed in the payload's ``done``, so a retried job never repeats them.  A
part whose reply was lost, or whose worker died right after sending, is not in ``done``; so before a
*retried* job (attempt 2 or later) sends its comment again, the deal's newest comments are listed
(``crm.timeline.comment.list``, ``order {ID: DESC}``, 50 a page —
``api-reference/crm/timeline/comments/crm-timeline-comment-list.md``) and a comment carrying the
payload's ``ref`` marker counts as sent.  A robot answer refused with ``ACCESS_DENIED`` on a retry
was consumed by the earlier send (the token is single-use — ``bizproc-event-send.md``) and counts
as sent too.  Notifications (``im.notify.system.add``) cannot be listed: a lost reply may repeat one.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence

from relay.errors import AuthError, PermanentError, RelayError
from relay.models import Job
from relay.portal.client import PortalClient
from relay.portal.protocol import MAX_BATCH, BatchReply, Command
from relay.sync import notices
from relay.sync.outcome import Outcome, pack

log = logging.getLogger(__name__)


class Deliverer:
    """Sends notify jobs through the source portals' and the target's clients."""

    def __init__(self, target: PortalClient, sources: Mapping[str, PortalClient]) -> None:
        self.target, self.sources = target, sources

    def deliver(self, jobs: Sequence[Job]) -> list[Outcome]:
        """One outcome per notify job, in order."""
        results = {j.id: Outcome(job=j, outcome="notified", payload=dict(j.payload)) for j in jobs}
        by_portal: dict[str, list[Job]] = defaultdict(list)
        for j in jobs:
            portal = notices.TARGET if j.payload.get("portal") == notices.TARGET else j.source_id
            if portal != notices.TARGET and portal not in self.sources:
                results[j.id].status = "failed"
                results[j.id].error = PermanentError(f"source {j.source_id!r} is no longer configured")
            else:
                by_portal[portal].append(j)
        for portal, group in by_portal.items():
            client = self.target if portal == notices.TARGET else self.sources[portal]
            self._skip_sent_comments(client, [j for j in group if j.attempts > 1], results)
            for chunk in pack(group, lambda j: len(notices.commands(results[j.id].payload or {}, ""))):
                self._send(client, chunk, results)
        return [results[j.id] for j in jobs]

    def _skip_sent_comments(self, client: PortalClient, retried: Sequence[Job], results: dict[int, Outcome]) -> None:
        """Mark ``comment`` done for retried jobs whose comment (by its ``ref``) is on the deal already."""
        pending = [j for j in retried if notices.comment_pending(results[j.id].payload or {})]
        for start in range(0, len(pending), MAX_BATCH):
            chunk = pending[start:start + MAX_BATCH]
            cmds = {f"c{j.id}": Command("crm.timeline.comment.list", {
                "filter": {"ENTITY_ID": j.deal_id, "ENTITY_TYPE": "deal"}, "select": ["ID", "COMMENT"],
                "order": {"ID": "DESC"}}) for j in chunk}
            try:
                reply = client.batch(cmds, write=False)
            except RelayError as exc:  # cannot tell: do not send (a retry looks again)
                for j in chunk:
                    results[j.id].status, results[j.id].error = "failed", exc
                continue
            for j in chunk:
                self._take_listing(j, reply, results[j.id])

    @staticmethod
    def _take_listing(j: Job, reply: BatchReply, res: Outcome) -> None:
        try:
            found = reply.get(f"c{j.id}")
        except RelayError as exc:
            res.status, res.error = "failed", exc
            return
        payload = res.payload or {}
        texts = [str(c.get("COMMENT", "")) for c in found or [] if isinstance(c, Mapping)]
        if notices.comment_sent(payload, texts):
            log.info("notify job %s: its comment is on deal %s already (ref %s); not sent again", j.id,
                     j.deal_id, payload.get("ref"))
            payload["done"] = [*payload.get("done", []), "comment"]

    def _send(self, client: PortalClient, chunk: Sequence[Job], results: dict[int, Outcome]) -> None:
        chunk = [j for j in chunk if results[j.id].status != "failed"]
        parts = {j.id: notices.commands(results[j.id].payload or {}, f"_{j.id}") for j in chunk}
        cmds = {name: cmd for named in parts.values() for name, (_part, cmd) in named.items()}
        if not cmds:
            return
        try:
            reply = client.batch(cmds, write=True)
        except RelayError as exc:
            for j in chunk:
                results[j.id].status, results[j.id].error = "failed", exc
            return
        for j in chunk:
            res = results[j.id]
            payload = res.payload or {}
            done = list(payload.get("done", []))
            for name, (part, _cmd) in parts[j.id].items():
                try:
                    reply.get(name)
                    done.append(part)
                except AuthError as exc:
                    if part.startswith("robot:") and j.attempts > 1 and exc.code == "ACCESS_DENIED":
                        log.info("notify job %s: robot token already used by an earlier send", j.id)
                        done.append(part)
                    else:
                        res.status, res.error = "failed", exc
                except RelayError as exc:
                    res.status, res.error = "failed", exc
            payload["done"] = done
            res.payload = payload

