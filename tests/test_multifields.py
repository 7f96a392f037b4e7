"""Multi-field updates leave exactly the source's values on the target (issue 8, acceptance 2)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from relay.mapping.multifields import normalize, plan_all, plan_update, wanted


def apply(target: list[dict[str, Any]], changes: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Bitrix24's update semantics: no ID adds, ID + value changes, ID + empty value deletes."""
    out = {e["ID"]: dict(e) for e in target}
    next_id = max([int(i) for i in out] or [0]) + 1
    for change in changes:
        if "ID" not in change:
            out[str(next_id)] = {"ID": str(next_id), **change}
            next_id += 1
        elif not change["VALUE"]:
            out.pop(change["ID"], None)
        else:
            out[change["ID"]].update(change)
    return list(out.values())


def phones(*values: str, ids: bool = False) -> list[dict[str, str]]:
    return [{**({"ID": str(10 + i)} if ids else {}), "VALUE": v, "VALUE_TYPE": "WORK"} for i, v in enumerate(values)]


@pytest.mark.parametrize(("source", "target", "expected"), [
    (phones("+7 900 111"), phones("+7900111", ids=True), []),  # same number, other formatting: no change
    (phones("111", "222"), phones("111", ids=True), [{"VALUE": "222", "VALUE_TYPE": "WORK"}]),
    (phones("111"), phones("111", "222", ids=True), [{"ID": "11", "VALUE": ""}]),
    (phones("333"), phones("111", ids=True), [{"ID": "10", "VALUE": "333", "VALUE_TYPE": "WORK"}]),  # in place
    ([], phones("111", ids=True), [{"ID": "10", "VALUE": ""}]),
    (phones("111", "111"), [], [{"VALUE": "111", "VALUE_TYPE": "WORK"}]),  # the source's duplicate once
    (phones("111"), phones("111", "111", ids=True), [{"ID": "11", "VALUE": ""}]),  # the target's duplicate goes
])
def test_plan_update(source: list[dict[str, str]], target: list[dict[str, str]],
                     expected: list[dict[str, str]]) -> None:
    assert plan_update("PHONE", source, target) == expected


def test_a_changed_an_added_and_a_removed_phone() -> None:
    target = phones("111", "222", "333", ids=True)
    source = phones("111", "222-0", "444")  # 222 changed, 333 removed, 444 added
    after = apply(target, plan_update("PHONE", source, target))
    assert sorted(normalize("PHONE", e["VALUE"]) for e in after) == ["111", "2220", "444"]


def test_random_lists_always_end_as_the_source() -> None:
    rng = random.Random(7)
    pool = [f"+7 (900) 000-00-0{i}" for i in range(6)] + ["8 900 000 00 01"]
    for _ in range(500):
        source = [{"VALUE": rng.choice(pool), "VALUE_TYPE": rng.choice(["WORK", "MOBILE"])}
                  for _ in range(rng.randint(0, 4))]
        target = [{"ID": str(i + 1), "VALUE": rng.choice(pool), "VALUE_TYPE": "WORK"} for i in range(rng.randint(0, 4))]
        after = apply(target, plan_update("PHONE", source, target))
        assert sorted(normalize("PHONE", e["VALUE"]) for e in after) == sorted(
            normalize("PHONE", e["VALUE"]) for e in wanted("PHONE", source))
        assert apply(after, plan_update("PHONE", source, after)) == after  # a second run changes nothing
        assert plan_update("PHONE", source, after) == []


def test_emails_compare_without_case_and_plan_all_skips_unchanged_fields() -> None:
    source = {"EMAIL": [{"VALUE": "A@B.ru", "VALUE_TYPE": "WORK"}], "PHONE": phones("1")}
    target = {"EMAIL": [{"ID": "5", "VALUE": "a@b.ru", "VALUE_TYPE": "WORK"}], "PHONE": []}
    assert plan_all(source, target) == {"PHONE": [{"VALUE": "1", "VALUE_TYPE": "WORK"}]}
