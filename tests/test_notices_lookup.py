"""Pure parts of issue 7: notice payloads (robot answers, alerts) and stamp look-ups against a fake portal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relay.errors import QueryLimitExceeded
from relay.portal.protocol import BatchReply, Command
from relay.sync import find as lookup
from relay.sync import notices


def test_every_robot_token_gets_one_answer_and_a_done_part_is_never_resent() -> None:
    payload = notices.success_notice(action="created", deal={"ID": "7", "ASSIGNED_BY_ID": "3", "TITLE": "X"},
                                     target_deal_id="55", target_portal="esb", event_tokens=["a", "b"])
    cmds = notices.commands(payload, "_1")
    assert sorted(cmds) == ["comment_1", "notify_1", "robot0_1", "robot1_1"]
    part, robot = cmds["robot1_1"]
    assert part == "robot:1" and robot.method == "bizproc.event.send" and robot.params["EVENT_TOKEN"] == "b"
    assert robot.params["RETURN_VALUES"] == {"target_deal_id": "55", "result": "created", "status": "created",
                                             "target_deal_url": "https://esb/crm/deal/details/55/",
                                             "message": robot.params["LOG_MESSAGE"]}
    payload["done"] = ["comment", "robot:0"]
    assert sorted(notices.commands(payload, "")) == ["notify", "robot1"]


def test_old_one_token_payloads_still_answer_once() -> None:
    old = {"deal_id": "7", "done": [], "robot": {"event_token": "t", "return_values": {"result": "updated"}}}
    [(part, cmd)] = notices.commands(old, "").values()
    assert part == "robot:0" and cmd.params["EVENT_TOKEN"] == "t"
    assert notices.commands({**old, "done": ["robot"]}, "") == {}


def test_failures_answer_robots_never_the_manager_and_comment_only_when_asked() -> None:
    deal = {"ID": "7", "ASSIGNED_BY_ID": "3"}
    assert notices.failure_notice(deal_id="7", reason="boom", deal=deal) is None
    robots = notices.failure_notice(deal_id="7", reason="boom", deal=deal, event_tokens=["t"])
    assert robots is not None and "notify" not in robots and "comment" not in robots
    values = robots["robots"]["return_values"]
    assert values["status"] == "error" and values["result"] == "failed" and "boom" in robots["robots"]["log_message"]
    commented = notices.failure_notice(deal_id="7", reason="boom", deal=deal, comment=True)
    assert commented is not None and "boom" in commented["comment"] and "notify" not in commented
    alert = notices.alert(user_id="17", source_id="p", deal_id="7", reason="boom", quiet=900)
    [(part, cmd)] = notices.commands(alert, "").values()
    assert alert["portal"] == notices.TARGET and part == "alert" and cmd.params["USER_ID"] == "17"
    assert "relay replay --dead --source p" in cmd.params["MESSAGE"] and "15 мин" in cmd.params["MESSAGE"]


def test_robot_notice_is_none_without_robots() -> None:
    assert notices.robot_notice(deal_id="7", event_tokens=[], status="skipped", reason="x") is None
    skipped = notices.robot_notice(deal_id="7", event_tokens=["t"], status="skipped", reason="not in stage")
    assert skipped is not None and set(skipped) == {"deal_id", "done", "robots"}


class FakeTarget:
    """Answers crm.deal.list commands from a list of deals, honouring only the filters it knows."""

    def __init__(self, deals: list[dict[str, str]], known: set[str], refuse: bool = False) -> None:
        self.deals, self.known, self.refuse, self.batches = deals, known, refuse, 0

    def batch(self, commands: Mapping[str, Command], *, write: bool) -> BatchReply:
        self.batches += 1
        if self.refuse:
            raise QueryLimitExceeded("QUERY_LIMIT_EXCEEDED", "Too many requests", status=503)
        results: dict[str, Any] = {}
        for name, cmd in commands.items():
            rows = [d for d in self.deals if all(self._keep(d, k, v) for k, v in cmd.params["filter"].items())]
            results[name] = sorted(rows, key=lambda d: int(d["ID"]))[:50]
        return BatchReply(results=results, errors={})

    def _keep(self, deal: dict[str, str], key: str, value: Any) -> bool:
        field = key.lstrip("=@")
        if field not in self.known:
            return True  # like Bitrix24: an unknown filter field is ignored
        return deal.get(field) in (value if isinstance(value, list) else [value])


def test_lookup_finds_many_stamps_at_once_and_rechecks_each_hit() -> None:
    deals = [{"ID": str(10 + i), "UF_CRM_LINK": f"m:{i}"} for i in range(30)] + [{"ID": "99", "UF_CRM_LINK": "m:3"}]
    wanted = [lookup.Wanted(("p", str(i)), "UF_CRM_LINK", "m") for i in (3, 4, 77)]
    fake = FakeTarget(deals, known={"UF_CRM_LINK"})
    found = lookup.find(fake, wanted)  # type: ignore[arg-type]
    assert found == {("p", "3"): ["13", "99"], ("p", "4"): ["14"], ("p", "77"): []} and fake.batches == 1
    blind = FakeTarget(deals, known=set())  # the field is unknown: the filter is ignored, every deal comes back
    assert lookup.find(blind, wanted)[("p", "77")] == []  # type: ignore[arg-type]


def test_a_full_page_is_asked_again_one_stamp_at_a_time() -> None:
    copies = [{"ID": str(100 + i), "ORIGINATOR_ID": "b24relay:m", "ORIGIN_ID": "5"} for i in range(50)]
    other = [{"ID": "999", "ORIGINATOR_ID": "b24relay:m", "ORIGIN_ID": "6"}]
    wanted = [lookup.Wanted(("p", d), "ORIGIN_ID", "m") for d in ("5", "6")]
    fake = FakeTarget(copies + other, known={"ORIGINATOR_ID", "ORIGIN_ID"})
    found = lookup.find(fake, wanted)  # type: ignore[arg-type]
    assert found[("p", "6")] == ["999"] and len(found[("p", "5")]) == 50 and fake.batches == 2  # type: ignore[arg-type]


def test_a_refused_lookup_reports_the_error_per_deal() -> None:
    found = lookup.find(FakeTarget([], known=set(), refuse=True), [lookup.Wanted(("p", "1"), "ORIGIN_ID", "m")])  # type: ignore[arg-type]
    assert isinstance(found[("p", "1")], QueryLimitExceeded)
