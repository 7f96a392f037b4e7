"""The transform's two automatic rules: emptied source fields clear the target, and the amount mode
follows the amount (issue 7, point 9).  See the docstring of relay/mapping.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from relay.mapping.deal import CLEAR, CLEAR_MULTIPLE, MANUAL, MappingSpec, describe, fingerprint, transform
from relay.phpquery import build_query, parse_query

SOURCE = {"id": "partner", "domain": "partner.bitrix24.test", "member_id": "m1"}
MANY = list(CLEAR_MULTIPLE)


def spec_of(text: str) -> MappingSpec:
    return MappingSpec.model_validate(yaml.safe_load("link_field: UF_CRM_SRC\n" + text))


def one_field(line: str) -> MappingSpec:
    return spec_of(f"fields:\n  T: {line}\nproducts: {{enabled: false}}\n")


# --- emptied values -----------------------------------------------------------------------------

NOT_SENT = "<not sent>"


@pytest.mark.parametrize(
    ("line", "deal", "create", "update"),
    [
        # crm.deal.get's empty forms: null (links, custom fields), "" (dates, strings), [] (multiple)
        ("CLOSEDATE", {"CLOSEDATE": ""}, NOT_SENT, CLEAR),
        ("CLOSEDATE", {"CLOSEDATE": None}, NOT_SENT, CLEAR),
        ("UF_CRM_TAGS", {"UF_CRM_TAGS": []}, NOT_SENT, MANY),
        ("{from: UF_CRM_TAGS, map: {'41': '141'}}", {"UF_CRM_TAGS": []}, NOT_SENT, MANY),
        ("{from: UF_CRM_ONE, map: {'41': '141'}}", {"UF_CRM_ONE": None}, NOT_SENT, CLEAR),
        ("{template: '{COMMENTS}'}", {"COMMENTS": None}, NOT_SENT, CLEAR),
        ("{const: ''}", {}, NOT_SENT, CLEAR),
        # a default fills the empty value instead
        ("{from: UF_CRM_TAGS, default: ['7']}", {"UF_CRM_TAGS": []}, ["7"], ["7"]),
        ("{from: CLOSEDATE, default: '2026-01-01'}", {"CLOSEDATE": ""}, "2026-01-01", "2026-01-01"),
        ("{from: CLOSEDATE, default: '2026-01-01'}", {}, "2026-01-01", "2026-01-01"),
        # absent from the source deal: unknown, so left alone on both
        ("CLOSEDATE", {}, NOT_SENT, NOT_SENT),
        ("{from: UF_CRM_TAGS, map: {'41': '141'}}", {}, NOT_SENT, NOT_SENT),
        # values are untouched
        ("UF_CRM_TAGS", {"UF_CRM_TAGS": ["41"]}, ["41"], ["41"]),
        ("{from: UF_CRM_TAGS, map: {'41': '141'}}", {"UF_CRM_TAGS": ["41"]}, ["141"], ["141"]),
        ("UF_CRM_FLAG", {"UF_CRM_FLAG": False}, False, False),  # a boolean "no" is a value
        ("UF_CRM_NUM", {"UF_CRM_NUM": "0"}, "0", "0"),
    ],
)
def test_empty_source_values_are_left_out_of_create_and_cleared_by_update(
    line: str, deal: dict[str, Any], create: Any, update: Any
) -> None:
    out = transform(deal, [], one_field(line), SOURCE)
    assert out.fields.get("T", NOT_SENT) == create
    assert out.update_fields.get("T", NOT_SENT) == update


def test_create_only_fields_are_not_cleared() -> None:
    spec = spec_of("fields:\n  CLOSEDATE: CLOSEDATE\ncreate_only: [CLOSEDATE]\n")
    assert transform({"CLOSEDATE": ""}, [], spec, SOURCE).update_fields == {}


@pytest.mark.parametrize(
    ("fields", "wire"),
    [
        ({"CLOSEDATE": CLEAR}, ["fields[CLOSEDATE]="]),
        ({"UF_CRM_TAGS": MANY}, ["fields[UF_CRM_TAGS][0]="]),  # PHP: [''] like b24pysdk's X[]=
        ({"CLOSEDATE": None, "UF_CRM_TAGS": []}, []),  # what http_build_query would drop
    ],
)
def test_clears_survive_the_batch_encoding(fields: dict[str, Any], wire: list[str]) -> None:
    query = build_query({"id": 5, "fields": fields})
    assert [unquote(p) for p in query.split("&")[1:]] == wire
    decoded = parse_query(query).get("fields", {})
    assert decoded == {k: v for k, v in fields.items() if v not in (None, [])}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"CLOSEDATE": "2026-09-30T00:00:00+03:00"}, {"CLOSEDATE": ""}),
        ({"CLOSEDATE": "2026-09-30T00:00:00+03:00"}, {"CLOSEDATE": None}),
        ({"UF_CRM_TAGS": ["41", "42"]}, {"UF_CRM_TAGS": []}),
        ({"UF_CRM_TAGS": ["41"]}, {"UF_CRM_TAGS": ["42"]}),
    ],
)
def test_a_cleared_field_changes_the_fingerprint(before: dict[str, Any], after: dict[str, Any]) -> None:
    [name] = before
    spec = spec_of(f"fields:\n  {name}: {name}\n")
    assert fingerprint(transform(before, [], spec, SOURCE)) != fingerprint(transform(after, [], spec, SOURCE))


def test_cleared_stays_cleared_with_a_stable_fingerprint() -> None:
    spec = spec_of("fields:\n  CLOSEDATE: CLOSEDATE\n")
    assert fingerprint(transform({"CLOSEDATE": ""}, [], spec, SOURCE)) == fingerprint(
        transform({"CLOSEDATE": None}, [], spec, SOURCE))  # both are "empty": no second write


# --- the amount mode ----------------------------------------------------------------------------

DEAL = {"OPPORTUNITY": "999.00", MANUAL: "Y", "TITLE": "Boiler"}


@pytest.mark.parametrize(
    ("mapping", "deal", "create", "update"),
    [
        # the mapping writes OPPORTUNITY and rows are relayed: the mode goes along
        ("fields: {OPPORTUNITY: OPPORTUNITY}\n", DEAL, "Y", "Y"),
        ("fields: {OPPORTUNITY: OPPORTUNITY}\n", {**DEAL, MANUAL: "N"}, "N", "N"),
        ("fields: {OPPORTUNITY: {const: 100}}\n", DEAL, "Y", "Y"),
        # OPPORTUNITY only on create: so is its mode
        ("fields: {OPPORTUNITY: OPPORTUNITY}\ncreate_only: [OPPORTUNITY]\n", DEAL, "Y", NOT_SENT),
        # the mapping decides itself
        (f"fields: {{OPPORTUNITY: OPPORTUNITY, {MANUAL}: {{const: N}}}}\n", DEAL, "N", "N"),
        # nothing to protect: no amount written, or rows never relayed (no recalculation by rows)
        ("fields: {TITLE: TITLE}\n", DEAL, NOT_SENT, NOT_SENT),
        ("fields: {OPPORTUNITY: OPPORTUNITY}\nproducts: {enabled: false}\n", DEAL, NOT_SENT, NOT_SENT),
        # the source deal does not say: left to the target
        ("fields: {OPPORTUNITY: OPPORTUNITY}\n", {"OPPORTUNITY": "999.00"}, NOT_SENT, NOT_SENT),
    ],
)
def test_manual_amount_mode_follows_the_amount(
    mapping: str, deal: dict[str, Any], create: Any, update: Any
) -> None:
    out = transform(deal, [{"PRODUCT_NAME": "Boiler", "PRICE": 1500, "QUANTITY": 1}], spec_of(mapping), SOURCE)
    assert out.fields.get(MANUAL, NOT_SENT) == create
    assert out.update_fields.get(MANUAL, NOT_SENT) == update


def test_switching_the_mode_changes_the_fingerprint() -> None:
    spec = spec_of("fields: {OPPORTUNITY: OPPORTUNITY}\n")
    rows = [{"PRODUCT_NAME": "Boiler", "PRICE": 999, "QUANTITY": 1}]
    manual, automatic = (transform({**DEAL, MANUAL: m}, rows, spec, SOURCE) for m in ("Y", "N"))
    assert fingerprint(manual) != fingerprint(automatic)


@pytest.mark.parametrize(
    ("mapping", "line"),
    [
        ("fields: {OPPORTUNITY: OPPORTUNITY}\n",
         f"{MANUAL} <- {MANUAL} (automatic: OPPORTUNITY is written and rows are relayed)"),
        ("fields: {OPPORTUNITY: OPPORTUNITY}\ncreate_only: [OPPORTUNITY]\n",
         f"{MANUAL} <- {MANUAL} (automatic: OPPORTUNITY is written and rows are relayed) [create only]"),
        (f"fields: {{OPPORTUNITY: OPPORTUNITY, {MANUAL}: {MANUAL}}}\n", None),
    ],
)
def test_describe_tells_about_the_carried_mode(mapping: str, line: str | None) -> None:
    lines = describe(spec_of(mapping))
    automatic = [text for text in lines if "(automatic:" in text]
    assert automatic == ([line] if line else [])
