"""Issue 10: what the worker does on an installed portal — the robot (added, or updated on a re-install),
the offline bindings, and moving offline events into the queue before clearing exactly those."""

from __future__ import annotations

from typing import Any

import pytest

from relay.errors import ValidationError
from relay.sync import apps


class FakePortal:
    """Answers like a portal for the methods the set-up and the drain use (a fake, not a mock)."""

    def __init__(self, robots: list[str] | None = None, events: list[dict[str, Any]] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.robots = list(robots or [])
        self.bound: list[str] = []
        self.queue = list(events or [])
        self.reserved: dict[str, list[dict[str, Any]]] = {}
        self.errors: list[str] = []

    def call(self, method: str, params: dict[str, Any] | None = None, *, write: bool = False) -> Any:
        params = dict(params or {})
        self.calls.append((method, params))
        if method == "bizproc.robot.list":
            return list(self.robots)
        if method == "bizproc.robot.add":
            if params["CODE"] in self.robots:
                raise ValidationError("ERROR_ACTIVITY_ALREADY_INSTALLED", "Activity or Robot already installed!")
            self.robots.append(params["CODE"])
            return True
        if method == "bizproc.robot.update":
            return True
        if method == "event.bind":
            if params["event"] in self.bound:
                raise ValidationError("", "Handler already binded")
            self.bound.append(params["event"])
            return True
        if method == "event.offline.get":
            batch, self.queue = self.queue[:params["limit"]], self.queue[params["limit"]:]
            if not batch:
                return {"process_id": None, "events": []}
            process = f"p{len(self.reserved)}"
            self.reserved[process] = batch
            return {"process_id": process, "events": batch}
        if method == "event.offline.clear":
            kept = [e for e in self.reserved[params["process_id"]] if e["MESSAGE_ID"] not in params["message_id"]]
            self.reserved[params["process_id"]] = kept
            return True
        if method == "event.offline.error":  # marked: no longer handed out as new
            self.errors += params["message_id"]
            kept = [e for e in self.reserved[params["process_id"]] if e["MESSAGE_ID"] not in params["message_id"]]
            self.reserved[params["process_id"]] = kept
            return True
        raise AssertionError(method)


def event(n: int, name: str = "ONCRMDEALUPDATE") -> dict[str, Any]:
    return {"ID": n, "EVENT_NAME": name, "EVENT_DATA": {"FIELDS": {"ID": str(n)}}, "MESSAGE_ID": f"m{n}"}


def test_a_fresh_install_adds_the_robot_and_binds_the_events_once() -> None:
    portal = FakePortal()
    source = type("S", (), {"id": "partner"})()
    apps.set_up(portal, source, "https://relay.example/b24/partner", {"3": "ESB sales"}, deletes=True)  # type: ignore[arg-type]
    [(_, add)] = [c for c in portal.calls if c[0] == "bizproc.robot.add"]
    assert add["CODE"] == apps.ROBOT_CODE and add["USE_SUBSCRIPTION"] == "Y"
    assert add["HANDLER"] == "https://relay.example/b24/partner"
    assert set(add["RETURN_PROPERTIES"]) == {"target_deal_id", "target_deal_url", "status", "message"}
    assert add["PROPERTIES"]["funnel"]["Options"] == {"3": "ESB sales"}
    offline = [p for m, p in portal.calls if m == "event.bind" and p.get("event_type") == "offline"]
    assert {p["event"] for p in offline} == {"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE"}
    assert all(p["auth_connector"] == "b24relay" for p in offline)
    assert "ONOFFLINEEVENT" in portal.bound
    apps.set_up(portal, source, "https://relay.example/b24/partner", {}, deletes=False)  # type: ignore[arg-type]
    assert [m for m, _ in portal.calls].count("bizproc.robot.update") == 1  # a re-install updates, never fails


def test_offline_events_are_stored_before_exactly_those_are_cleared() -> None:
    portal = FakePortal(events=[event(n) for n in range(1, 121)] + [event(500, "ONCRMLEADADD")])
    stored: list[tuple[str, str]] = []
    moved = apps.drain(portal, stored.extend)  # type: ignore[arg-type]
    assert moved == 120 and [d for d, _ in stored] == [str(n) for n in range(1, 121)]
    assert all(not left for left in portal.reserved.values())  # every reserved record cleared or marked
    assert portal.errors == ["m500"]
    cleared = [p for m, p in portal.calls if m == "event.offline.clear"]
    assert all(p["process_id"] for p in cleared) and sum(len(p["message_id"]) for p in cleared) == 120


def test_a_failed_store_clears_nothing() -> None:
    portal = FakePortal(events=[event(1), event(2)])

    def broken(_calls: Any) -> None:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError, match="database gone"):
        apps.drain(portal, broken)  # type: ignore[arg-type]
    assert [m for m, _ in portal.calls if m == "event.offline.clear"] == []
    assert len(portal.reserved["p0"]) == 2  # still reserved: the portal hands them out again later
