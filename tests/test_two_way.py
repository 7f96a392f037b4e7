"""Two relays running both ways between two emulated portals (issue 8, acceptance point 6).

Portals A and B; relay ``ab`` takes A's deals to B, relay ``ba`` takes B's deals to A, each with its own
folder and database.  Each portal's outgoing webhook (``ONCRMDEALADD``/``ONCRMDEALUPDATE``) sends every
deal change to the relay reading that portal, the relays' own REST writes included (``onCrmDealAdd``
fires "when a deal is created manually or via the method crm.deal.add" —
``api-reference/crm/deals/events/index.md``), so each copy one relay creates or updates is announced
at once to the other.  Copies land in a trigger stage of the other side: only the loop guards — the
``ORIGIN_ID`` stamp (``ORIGINATOR_ID b24relay:…``) or ``relayed_marks`` — stop a ping-pong.

A timeline comment is announced by ``onCrmTimelineCommentAdd``
(``api-reference/crm/timeline/comments/events/on-crm-timeline-comment-add.md``); no Bitrix24 page says
it fires ``ONCRMDEALUPDATE``, and the emulator does not.  The ``comment-fires-update`` runs take the
worse portal, one that also announces the relay's own comment as an update of its deal.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from werkzeug.serving import BaseWSGIServer

from relay.boot import Relay, build
from relay.config import load_config
from relay.emulator import EmulatedPortal, default_source_config
from relay.emulator import portal as emulated
from relay.emulator.core import Reply
from relay.emulator.state import PortalState
from relay.store import Store, links
from relay.sweep import sweep_all
from relay.web.app import serve_in_thread
from relay.worker import SWEEP_CHECK

pytestmark = pytest.mark.e2e
EVENTS = ("ONCRMDEALADD", "ONCRMDEALUPDATE")
TRIGGER = "C1:PREPARATION"
LINK_UF = "UF_CRM_SOURCE_DEAL"
DEALS = 20  # per side
#: commands that only read; everything else a relay sends is a write or a notice
READS = frozenset({"crm.deal.list", "crm.deal.get", "crm.deal.fields", "crm.item.productrow.list",
                   "crm.deal.productrows.get", "crm.timeline.comment.list"})
NOTICES = frozenset({"crm.timeline.comment.add", "im.notify.system.add", "bizproc.event.send"})
MAPPING = """
trigger: {{stages: ["C1:PREPARATION", "C1:EXECUTING"]}}
fields:
  TITLE: TITLE
  OPPORTUNITY: OPPORTUNITY
  CURRENCY_ID: CURRENCY_ID
  CATEGORY_ID: {{const: 1}}
  STAGE_ID: {{from: STAGE_ID, map: {{"C1:PREPARATION": "C1:PREPARATION", "C1:EXECUTING": "C1:EXECUTING"}}}}
  ASSIGNED_BY_ID: {{const: "1"}}
create_only: [STAGE_ID, CATEGORY_ID]
link_field: {link}
relayed_marks: {marks}
"""


@dataclass
class Way:
    """One relay: reads ``source``, writes ``target``, hears ``source``'s outgoing webhook."""

    name: str
    source: EmulatedPortal
    target: EmulatedPortal
    link: str
    relay: Relay
    server: BaseWSGIServer
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def handler(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/b24/{self.name}"

    @property
    def token(self) -> str:
        return app_token(self.name)

    def stamp(self, deal: dict[str, Any]) -> str | None:
        """The source deal id this relay stamped on ``deal`` (a deal on its target), or None."""
        prefix = self.source.config.member_id
        if self.link == "ORIGIN_ID":
            return str(deal["ORIGIN_ID"]) if deal.get("ORIGINATOR_ID") == f"b24relay:{prefix}" else None
        value = str(deal.get(LINK_UF) or "")
        return value.split(":", 1)[1] if value.startswith(f"{prefix}:") else None

    def busy(self) -> bool:
        """Jobs waiting or running, or checks for extra copies still due."""
        counts = self.relay.store.counts()
        if any(counts.get(k, {}).get(s) for k in ("sync", "notify") for s in ("pending", "running")):
            return True
        with self.relay.store.engine.connect() as conn:
            return bool(conn.execute(select(func.count()).select_from(links).where(links.c.verify_at.isnot(None)))
                        .scalar())


@dataclass
class TwoWay:
    """Portals A and B with relay ``ab`` (A -> B) and relay ``ba`` (B -> A), workers running."""

    a: EmulatedPortal
    b: EmulatedPortal
    ways: list[Way]
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def portals(self) -> tuple[EmulatedPortal, EmulatedPortal]:
        return self.a, self.b

    def run_until_quiet(self, quiet: float = 1.0, timeout: float = 60.0) -> None:
        """Wait until no job or copy check is due, no event is on its way and no portal has seen a
        request for ``quiet`` seconds."""
        deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
        while time.monotonic() < deadline:
            for p in self.portals:
                p.wait_deliveries(timeout=5.0)
            seen = tuple(n for p in self.portals for n in (len(p.requests), len(p.deliveries())))
            if seen != last or any(w.busy() for w in self.ways):
                last, since = seen, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.05)
        raise AssertionError(f"never quiet: {[w.relay.store.counts() for w in self.ways]}")

    def reset_logs(self) -> None:
        for p in self.portals:
            p.reset_log()


def app_token(relay_name: str) -> str:
    """The application token of the outgoing webhook calling this relay."""
    return f"{relay_name}-app-sekret-token"


def portal(name: str, first_deal_id: int) -> EmulatedPortal:
    """An emulated portal with funnel 1 and the string field the ``UF_CRM_…`` stamp needs."""
    config = default_source_config(domain=f"{name}.bitrix24.test", secret=f"{name}-sekret-0a1b2c",
                                   uf_fields={LINK_UF: "string"}, enum_items={}, first_deal_id=first_deal_id,
                                   rate=50.0, burst=50)
    return EmulatedPortal(config).start()


def start_way(folder: Path, name: str, source: EmulatedPortal, target: EmulatedPortal, link: str,
              marks: list[str], stop: threading.Event) -> Way:
    """Write relay.yaml + mapping into ``folder``, build the relay on its own SQLite file, serve its
    handler, start two worker threads and bind ``source``'s outgoing webhook to it."""
    folder.mkdir(parents=True)
    (folder / "mapping.yaml").write_text(MAPPING.format(link=link, marks=marks))
    (folder / "relay.yaml").write_text(f"""
target: {{webhook_url: "${{TARGET_WEBHOOK}}", limits: {{rate: 50, burst: 50}}, timeout: 2, create_margin: 0.5}}
sources:
  - id: {name}
    webhook_url: ${{SOURCE_WEBHOOK}}
    application_token: ${{APP_TOKEN}}
    member_id: {source.config.member_id}
    domain: {source.config.domain}
    mapping: mapping.yaml
    limits: {{rate: 50, burst: 50}}
    timeout: 2
calls: {{attempts: 2, backoff: 0.01}}
worker: {{linger: 0.05, backoff_base: 0.05, backoff_max: 0.2, poll_interval: 0.05, lease_seconds: 30}}
""")
    env = {"TARGET_WEBHOOK": target.webhook_url, "SOURCE_WEBHOOK": source.webhook_url, "APP_TOKEN": app_token(name)}
    relay = build(load_config(folder / "relay.yaml", env), Store(f"sqlite:///{folder}/relay.db"))
    relay.check_target()
    way = Way(name, source, target, link, relay, serve_in_thread(relay.app()))
    way.threads = relay.start_workers(2, stop)
    source.bind_outgoing(way.handler, EVENTS, way.token, include_rest=True)
    return way


@pytest.fixture
def two_way(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TwoWay]:
    """``request.param``: the link fields of relay ``ab`` and relay ``ba``; a relay lists the other's
    ``UF_CRM_…`` link field in ``relayed_marks`` (an ``ORIGIN_ID`` stamp is recognised by itself)."""
    link_ab, link_ba = request.param
    a, b = portal("a", 1001), portal("b", 5001)
    tw = TwoWay(a, b, [])
    try:
        for name, src, dst, link, other in (("ab", a, b, link_ab, link_ba), ("ba", b, a, link_ba, link_ab)):
            marks = [other] if other != "ORIGIN_ID" else []
            tw.ways.append(start_way(tmp_path / name, name, src, dst, link, marks, tw.stop))
        yield tw
    finally:
        tw.stop.set()
        for w in tw.ways:
            w.relay.wake.set()
            for t in w.threads:
                t.join(10)
            w.server.shutdown()
        for p in tw.portals:
            p.stop()
        for w in tw.ways:
            w.relay.store.close()


def comment_fires_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the emulated portals announce every timeline comment as ``ONCRMDEALUPDATE`` of its deal."""
    add = emulated.METHODS["crm.timeline.comment.add"]

    def comment_add(state: PortalState, params: Any) -> Reply:
        reply = add(state, params)
        state.changes.append(("ONCRMDEALUPDATE", int(state.comments[-1]["ENTITY_ID"])))
        return reply

    monkeypatch.setitem(emulated.METHODS, "crm.timeline.comment.add", comment_add)


def commands(p: EmulatedPortal) -> Counter[str]:
    """REST commands the portal ran since its log was reset, batch commands counted one by one."""
    return Counter(m for r in p.requests for m in (r.inner if r.method == "batch" else (r.method,)))


def writes(p: EmulatedPortal) -> Counter[str]:
    """The commands that are neither reads nor notices."""
    return Counter({m: n for m, n in commands(p).items() if m not in READS | NOTICES})


def new_deals(p: EmulatedPortal, prefix: str, count: int) -> list[int]:
    """Deals made by a user: even ones created in the trigger stage, odd ones created in C1:NEW and
    then moved into it (one ``ONCRMDEALADD``, one ``ONCRMDEALUPDATE``)."""
    ids = []
    for i in range(count):
        stage = TRIGGER if i % 2 == 0 else "C1:NEW"
        deal_id = p.add_deal({"TITLE": f"{prefix}-{i}", "CATEGORY_ID": "1", "STAGE_ID": stage, "OPPORTUNITY": "100.00",
                              "CURRENCY_ID": "RUB", "ASSIGNED_BY_ID": "1"},
                             rows=[{"PRODUCT_ID": 0, "PRODUCT_NAME": "Service", "PRICE": 100.0, "QUANTITY": 1}])
        if stage != TRIGGER:
            p.update_deal(deal_id, {"STAGE_ID": TRIGGER})
        ids.append(deal_id)
    return ids


def copies(way: Way) -> dict[str, list[dict[str, Any]]]:
    """The relay's copies on its target, by the source deal id they are stamped with."""
    out: dict[str, list[dict[str, Any]]] = {}
    for deal in way.target.deals():
        origin = way.stamp(deal)
        if origin is not None:
            out.setdefault(origin, []).append(deal)
    return out


def echo(way: Way, deal_ids: Iterable[int]) -> int:
    """Send ``ONCRMDEALUPDATE`` for each deal to the relay, as a portal's echo would; returns how many."""
    sent = 0
    for deal_id in deal_ids:
        status, body = way.source.send_event(way.handler, "ONCRMDEALUPDATE", deal_id, way.token)
        assert status == 200 and '"job_id"' in body, body
        sent += 1
    return sent


def other(tw: TwoWay, way: Way) -> Way:
    """The relay running the other way."""
    return next(w for w in tw.ways if w is not way)


#: (link field of relay ab, of relay ba), whether a comment is announced as a deal update; a relay
#: lists the other's UF_CRM_… link field in relayed_marks
CASES = [
    pytest.param(("ORIGIN_ID", "ORIGIN_ID"), False, id="origin-id"),
    pytest.param((LINK_UF, LINK_UF), True, id="relayed-marks-comment-fires-update"),
    pytest.param(("ORIGIN_ID", LINK_UF), True, id="mixed-comment-fires-update"),
]


@pytest.mark.parametrize(("two_way", "echo_comments"), CASES, indirect=["two_way"])
def test_two_relays_both_ways_copy_each_deal_once_and_settle(two_way: TwoWay, echo_comments: bool,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    tw, (ab, ba) = two_way, two_way.ways
    if echo_comments:
        comment_fires_update(monkeypatch)
    tw.run_until_quiet()  # the workers' first sweeps
    tw.reset_logs()
    originals = {"a": new_deals(tw.a, "A", DEALS), "b": new_deals(tw.b, "B", DEALS)}
    tw.run_until_quiet()
    # users change 5 originals on each side, and 3 copies the other relay made there
    for way, mine in ((ab, originals["a"]), (ba, originals["b"])):
        for deal_id in mine[:5]:
            way.source.update_deal(deal_id, {"TITLE": f"deal {deal_id} v2"})
        for deal in [c[0] for origin, c in copies(way).items() if int(origin) in mine[10:13]]:
            way.target.update_deal(int(deal["ID"]), {"TITLE": "edited on the copy"})
    tw.run_until_quiet()

    for way, mine, theirs in ((ab, originals["a"], originals["b"]), (ba, originals["b"], originals["a"])):
        made = copies(way)
        assert sorted(made) == sorted(str(d) for d in mine)  # every original has a copy; nothing else does
        assert all(len(c) == 1 for c in made.values()), {k: [d["ID"] for d in c] for k, c in made.items()}
        # the other side holds its own originals and these copies only: no copy of a copy
        assert {int(d["ID"]) for d in way.target.deals()} == set(theirs) | {int(c[0]["ID"]) for c in made.values()}
        # one create per deal, one update per changed deal: echoes of writes and comments wrote nothing
        assert writes(way.target) == Counter({"crm.deal.add": DEALS, "crm.deal.update": 5,
                                              "crm.deal.productrows.set": DEALS + 5})
        assert all(made[str(d)][0]["TITLE"].endswith(" v2") for d in mine[:5])
        commented = Counter(c["ENTITY_ID"] for c in way.source.comments())
        assert commented == Counter({d: 2 if d in mine[:5] else 1 for d in mine})  # copies get no comment
        assert "dead" not in way.relay.store.counts()["sync"]
        back = {int(j.deal_id) for j in way.relay.store.jobs(kind="sync", limit=1000)
                if j.status == "skipped" and "not relayed back" in (j.last_error or "")}
        assert back == {int(c[0]["ID"]) for c in copies(other(tw, way)).values()}
    for p in tw.portals:  # the wiring works: the relays' own writes reached the other relay as events
        mine = originals[p.config.domain[0]]
        assert any(d["event"] == "ONCRMDEALADD" and d["deal_id"] not in mine for d in p.deliveries())
        if echo_comments:
            assert sum(d["event"] == "ONCRMDEALUPDATE" for d in p.deliveries()) >= len(p.comments())
    work = {p.config.domain[0]: (len(p.requests), dict(commands(p))) for p in tw.portals}

    tw.reset_logs()
    time.sleep(SWEEP_CHECK + 0.5)  # a full worker cycle, copy checks included
    assert [len(p.requests) for p in tw.portals] == [0, 0]

    # an extra round of echoes: every deal on both portals announced to its relay once more
    last_job = {w.name: w.relay.store.jobs(limit=1)[0].id for w in tw.ways}
    sent = {w.name: echo(w, [int(d["ID"]) for d in w.source.deals()]) for w in tw.ways}
    tw.run_until_quiet()
    for way, mine in ((ab, originals["a"]), (ba, originals["b"])):
        # originals: linked and unchanged (no look-up, no write); copies: skipped before any look-up
        fresh = [j for j in way.relay.store.jobs(limit=1000) if j.id > last_job[way.name]]
        assert {j.kind for j in fresh} == {"sync"}  # nothing to tell anyone: no comment, no notification
        assert {int(j.deal_id): j.outcome if j.status == "done" else j.status for j in fresh} == {
            int(d["ID"]): "unchanged" if int(d["ID"]) in mine else "skipped" for d in way.source.deals()}
        assert all("not relayed back" in (j.last_error or "") for j in fresh if j.status == "skipped")
        assert set(commands(way.source)) <= READS
        assert len(way.source.requests) <= sent[way.name]  # at most one read per echo (in fact 1-4 in all)
    echoed = {p.config.domain[0]: len(p.requests) for p in tw.portals}

    # a recovery sweep of both sources: unchanged originals are not queued, copies are not even looked at
    tw.reset_logs()
    queued: dict[str, int] = {}
    for way in tw.ways:
        [result] = sweep_all(way.relay.config, way.relay.store, way.relay.pipeline.sources, force=True)
        assert result.seen == DEALS and result.queued == 0
        queued[way.name] = result.queued
    tw.run_until_quiet()
    assert all(set(commands(p)) <= READS for p in tw.portals)
    swept = {p.config.domain[0]: len(p.requests) for p in tw.portals}
    print(f"\nrequests per portal: relaying {work}; quiet {SWEEP_CHECK + 0.5}s: 0; "
          f"echoes {sent}: {echoed}; sweep (queued {queued}): {swept}")


@pytest.mark.parametrize("two_way", [("ORIGIN_ID", "ORIGIN_ID")], indirect=True)
def test_the_relays_own_comment_causes_no_target_write(two_way: TwoWay) -> None:
    tw, (ab, _ba) = two_way, two_way.ways
    [deal_id] = new_deals(tw.a, "A", 1)
    tw.run_until_quiet()
    [comment] = tw.a.comments(deal_id)
    assert comment["COMMENT"].startswith("[b24relay] Сделка передана в ESB: создана сделка")
    tw.reset_logs()
    echo(ab, [deal_id])  # what a portal announcing the comment as a deal update would send
    tw.run_until_quiet()
    assert len(tw.a.requests) == 1 and set(commands(tw.a)) <= READS  # one batch read of the source deal
    assert tw.b.requests == []
    assert ab.relay.store.jobs(kind="sync", deal_id=str(deal_id), limit=1)[0].outcome == "unchanged"
    assert len(tw.a.comments(deal_id)) == 1
