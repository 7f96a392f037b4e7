"""Tests for relay.mapping.deal: the mapping file (load-time checks) and the pure transform."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from relay.errors import ConfigError, MappingError
from relay.mapping.deal import (
    CLEAR,
    CLEAR_MULTIPLE,
    MappingSpec,
    TargetDeal,
    describe,
    fingerprint,
    in_trigger,
    load_mapping,
    transform,
)

EXAMPLE = """\
trigger: {stages: ["C1:PREPARATION", "C1:EXECUTING"]}   # relay only deals in these source stages
fields:                                                  # target field: how to fill it
  TITLE: "{TITLE} ({source.domain})"                     # template over source values
  OPPORTUNITY: OPPORTUNITY                               # bare name = copy that source field
  CURRENCY_ID: CURRENCY_ID
  UF_CRM_PARTNER_COMPANY: COMPANY_ID
  SOURCE_ID: {const: PARTNER}
  CATEGORY_ID: {const: 3}
  STAGE_ID: {from: STAGE_ID, map: {"C1:PREPARATION": "C3:NEW", "C1:EXECUTING": "C3:PREPARATION"}}
  ASSIGNED_BY_ID: {from: ASSIGNED_BY_ID, map: {"1": "17"}, default: "17"}
  UF_CRM_DELIVERY: {from: UF_CRM_1700000000, map: {"79": "112", "80": "113"}}  # ids differ per portal
  COMMENTS: {template: "Partner deal {ID}: {COMMENTS}"}
  RESPONSIBLE: {from: ASSIGNED_BY_ID, map: users}        # `map` may name a table from `tables`
create_only: [STAGE_ID, CATEGORY_ID]   # written when the target deal is created, never on updates
tables:                                 # optional named translation tables
  users: {"1": "17", "5": "17"}
products:
  ids: {"15": "301"}                   # source catalog PRODUCT_ID -> target PRODUCT_ID
  unmapped: free_text                  # free_text (default): PRODUCT_ID 0 + the row's name | error
  enabled: true                        # false: never touch the target's product rows
link_field: UF_CRM_SOURCE_DEAL         # or ORIGIN_ID (meaning the ORIGINATOR_ID + ORIGIN_ID pair)
"""

SOURCE = {"id": "partner-a", "domain": "partner.bitrix24.ru", "member_id": "a1b2c3"}

# crm.deal.get: every value is a string
DEAL = {
    "ID": "7405", "TITLE": "Boiler", "STAGE_ID": "C1:PREPARATION", "OPPORTUNITY": "1500.00",
    "CURRENCY_ID": "RUB", "COMPANY_ID": "12", "ASSIGNED_BY_ID": "1", "UF_CRM_1700000000": "79",
    "COMMENTS": "x",
}

# crm.deal.productrows.get: real JSON numbers, plus keys the target must not receive
ROWS = [
    {"ID": 11, "OWNER_ID": 7405, "OWNER_TYPE": "D", "PRODUCT_ID": 15, "PRODUCT_NAME": "Boiler X200",
     "ORIGINAL_PRODUCT_NAME": "Boiler X200", "PRICE": 1200.0, "PRICE_EXCLUSIVE": 1000.0,
     "QUANTITY": 1, "DISCOUNT_TYPE_ID": 2, "DISCOUNT_RATE": 0, "DISCOUNT_SUM": 0, "TAX_RATE": 20,
     "TAX_INCLUDED": "Y", "CUSTOMIZED": "Y", "MEASURE_CODE": 796, "MEASURE_NAME": "pcs", "SORT": 10,
     "XML_ID": "boiler-x200", "TYPE": 1, "STORE_ID": None},
    {"ID": 12, "OWNER_ID": 7405, "OWNER_TYPE": "D", "PRODUCT_ID": 99, "PRODUCT_NAME": "Installation",
     "PRICE": 300, "QUANTITY": 2.5, "DISCOUNT_TYPE_ID": 1, "DISCOUNT_RATE": 0, "DISCOUNT_SUM": 0,
     "TAX_RATE": None, "TAX_INCLUDED": "N", "MEASURE_CODE": 356, "MEASURE_NAME": "h", "SORT": 20},
]

BASE = "link_field: UF_CRM_SRC\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "partner.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def spec_of(text: str) -> MappingSpec:
    """Validate a mapping written as YAML text (without touching the disk)."""
    import yaml

    return MappingSpec.model_validate(yaml.safe_load(text))


def fields_spec(*lines: str, extra: str = "") -> MappingSpec:
    return spec_of(BASE + "fields:\n" + "".join(f"  {line}\n" for line in lines) + extra)


ABSENT = "<not written>"  # neither by crm.deal.add nor by crm.deal.update
CLEARED = "<cleared>"  # left out of crm.deal.add, emptied by crm.deal.update
CLEARED_MANY = "<cleared, multiple>"  # the same for a multiple field


def written(target: TargetDeal, name: str = "T") -> Any:
    """What field ``name`` gets: its value (the same on create and update) or one of the markers."""
    create, update = target.fields.get(name, ABSENT), target.update_fields.get(name, ABSENT)
    if create != ABSENT:
        assert create == update, (create, update)
        return create
    return {repr(ABSENT): ABSENT, repr(CLEAR): CLEARED, repr(list(CLEAR_MULTIPLE)): CLEARED_MANY}[repr(update)]


# --- the full example ---------------------------------------------------------------------------


def test_example_mapping_end_to_end(tmp_path: Path) -> None:
    spec = load_mapping(write(tmp_path, EXAMPLE), {})
    target = transform(DEAL, ROWS, spec, SOURCE)
    assert target.fields == {
        "TITLE": "Boiler (partner.bitrix24.ru)",
        "OPPORTUNITY": "1500.00",
        "CURRENCY_ID": "RUB",
        "UF_CRM_PARTNER_COMPANY": "12",
        "SOURCE_ID": "PARTNER",
        "CATEGORY_ID": 3,
        "STAGE_ID": "C3:NEW",
        "ASSIGNED_BY_ID": "17",
        "UF_CRM_DELIVERY": "112",
        "COMMENTS": "Partner deal 7405: x",
        "RESPONSIBLE": "17",
    }
    expected_update = {k: v for k, v in target.fields.items() if k not in ("STAGE_ID", "CATEGORY_ID")}
    assert target.update_fields == expected_update
    assert target.rows == [
        {"PRODUCT_ID": 301, "PRODUCT_NAME": "Boiler X200", "PRICE": 1200.0, "QUANTITY": 1,
         "DISCOUNT_TYPE_ID": 2, "DISCOUNT_RATE": 0, "DISCOUNT_SUM": 0, "TAX_RATE": 20,
         "TAX_INCLUDED": "Y", "MEASURE_CODE": 796, "MEASURE_NAME": "pcs", "SORT": 10},
        {"PRODUCT_ID": 0, "PRODUCT_NAME": "Installation", "PRICE": 300, "QUANTITY": 2.5,
         "DISCOUNT_TYPE_ID": 1, "DISCOUNT_RATE": 0, "DISCOUNT_SUM": 0, "TAX_RATE": None,
         "TAX_INCLUDED": "N", "MEASURE_CODE": 356, "MEASURE_NAME": "h", "SORT": 20},
    ]
    assert in_trigger(DEAL, spec)
    assert not in_trigger({**DEAL, "STAGE_ID": "C1:WON"}, spec)
    with pytest.raises(MappingError, match=r"^STAGE_ID: source STAGE_ID value 'C1:WON' is not in"):
        transform({**DEAL, "STAGE_ID": "C1:WON"}, ROWS, spec, SOURCE)


def test_example_describe(tmp_path: Path) -> None:
    lines = describe(load_mapping(write(tmp_path, EXAMPLE), {}))
    assert lines[0] == "trigger: C1:PREPARATION, C1:EXECUTING"
    assert "STAGE_ID <- STAGE_ID via map (2 values) [create only]" in lines
    assert "RESPONSIBLE <- ASSIGNED_BY_ID via users (2 values)" in lines
    assert "CATEGORY_ID = 3 [create only]" in lines
    assert lines[-1] == "link_field: UF_CRM_SOURCE_DEAL"
    assert not any(line.startswith("warning") for line in lines)


def test_describe_warns_about_trigger_stages_missing_from_the_stage_map() -> None:
    spec = spec_of(BASE + 'trigger: {stages: [A, B]}\nfields:\n  STAGE_ID: {from: STAGE_ID, map: {A: X}}\n')
    assert describe(spec)[-1] == "warning: STAGE_ID: trigger stages not in its map: B"


# --- every field spec form ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "deal", "expected"),
    [
        # bare name: copy as is, whatever its type
        ("T: OPPORTUNITY", {"OPPORTUNITY": "10.50"}, "10.50"),
        ("T: UF_CRM_MULTI", {"UF_CRM_MULTI": ["1", "2"]}, ["1", "2"]),
        ("T: COMPANY_ID", {"COMPANY_ID": None}, CLEARED),  # emptied on the source
        ("T: COMPANY_ID", {}, ABSENT),  # not in the source deal at all: unknown, not empty
        ("T: {from: COMPANY_ID}", {"COMPANY_ID": "12"}, "12"),
        # default replaces empty values only
        ("T: {from: COMPANY_ID, default: '0'}", {"COMPANY_ID": None}, "0"),
        ("T: {from: COMPANY_ID, default: '0'}", {"COMPANY_ID": ""}, "0"),
        ("T: {from: COMPANY_ID, default: [a]}", {"COMPANY_ID": []}, ["a"]),
        ("T: {from: COMPANY_ID, default: '0'}", {}, "0"),
        ("T: {from: COMPANY_ID, default: '0'}", {"COMPANY_ID": "12"}, "12"),
        # const: any scalar or list, untouched by the deal
        ("T: {const: PARTNER}", {"T": "other"}, "PARTNER"),
        ("T: {const: 3}", {}, 3),
        ("T: {const: 1.5}", {}, 1.5),
        ("T: {const: true}", {}, True),
        ("T: {const: null}", {}, CLEARED),
        ("T: {const: [1, '2']}", {}, [1, "2"]),
        ("T: {const: 2024-08-30}", {}, "2024-08-30"),
        # template, written either way
        ("T: '{TITLE}!'", {"TITLE": "Boiler"}, "Boiler!"),
        ("T: {template: '#{ID}'}", {"ID": "7"}, "#7"),
    ],
)
def test_field_spec_forms(line: str, deal: dict[str, Any], expected: Any) -> None:
    assert written(transform(deal, [], fields_spec(line), SOURCE)) == expected


@pytest.mark.parametrize(
    ("template", "deal", "expected"),
    [
        ("{TITLE} ({source.domain})", {"TITLE": "Boiler"}, "Boiler (partner.bitrix24.ru)"),
        ("{source.id}/{source.member_id}", {}, "partner-a/a1b2c3"),
        ("[{MISSING}]", {}, "[]"),
        ("[{COMMENTS}]", {"COMMENTS": None}, "[]"),
        ("{{literal}} {ID}", {"ID": "7"}, "{literal} 7"),
        ("{{{ID}}}", {"ID": "7"}, "{7}"),
        ("a }} b {{", {}, "a } b {"),
        ("{UF_CRM_TAGS}", {"UF_CRM_TAGS": ["x", "", None, "y"]}, "x, y"),
        ("{PRICE}", {"PRICE": 12.5}, "12.5"),
        ("no references {{}}", {}, "no references {}"),
    ],
)
def test_templates(template: str, deal: dict[str, Any], expected: str) -> None:
    spec = spec_of(BASE + "fields:\n  T: {template: " + repr(template) + "}\n")
    assert transform(deal, [], spec, SOURCE).fields["T"] == expected


# --- maps ---------------------------------------------------------------------------------------

STAGES = "{from: STAGE_ID, map: {NEW: C3:NEW, 79: 112}"


@pytest.mark.parametrize(
    ("spec_line", "value", "expected"),
    [
        (STAGES + "}", "NEW", "C3:NEW"),
        (STAGES + "}", "79", "112"),  # YAML int key and value, compared as strings
        (STAGES + "}", 79, "112"),
        (STAGES + ", default: D}", "OTHER", "D"),
        (STAGES + "}", ["NEW", "79"], ["C3:NEW", "112"]),  # multiple field: each element
        (STAGES + ", default: D}", ["NEW", "X"], ["C3:NEW", "D"]),
        (STAGES + "}", None, CLEARED),  # empty without default: cleared
        (STAGES + "}", "", CLEARED),
        (STAGES + "}", [], CLEARED_MANY),
        (STAGES + ", default: D}", None, "D"),
        (STAGES + ", default: D}", [], "D"),
        ("{from: STAGE_ID, map: stages}", "NEW", "C3:NEW"),
        ("{from: STAGE_ID, map: stages, default: D}", "X", "D"),
    ],
)
def test_maps(spec_line: str, value: Any, expected: Any) -> None:
    spec = fields_spec(f"T: {spec_line}", extra="tables:\n  stages: {NEW: C3:NEW}\n")
    assert written(transform({"STAGE_ID": value}, [], spec, SOURCE)) == expected


@pytest.mark.parametrize(
    ("spec_line", "value", "message"),
    [
        (STAGES + "}", "C1:WON",
         "T: source STAGE_ID value 'C1:WON' is not in the map and there is no default"),
        (STAGES + "}", ["NEW", "80"],
         "T: source STAGE_ID value '80' is not in the map and there is no default"),
        (STAGES + "}", 80, "T: source STAGE_ID value '80' is not in the map and there is no default"),
        ("{from: STAGE_ID, map: stages}", "X",
         "T: source STAGE_ID value 'X' is not in the map (table stages) and there is no default"),
    ],
)
def test_map_miss_without_default_is_a_mapping_error(spec_line: str, value: Any, message: str) -> None:
    spec = fields_spec(f"T: {spec_line}", extra="tables:\n  stages: {NEW: C3:NEW}\n")
    with pytest.raises(MappingError) as info:
        transform({"STAGE_ID": value}, [], spec, SOURCE)
    assert str(info.value) == message


# --- create_only --------------------------------------------------------------------------------


def test_create_only_fields_are_left_out_of_updates() -> None:
    spec = fields_spec("A: {const: 1}", "B: {const: 2}", "C: {const: 3}", extra="create_only: [B, C]\n")
    target = transform({}, [], spec, SOURCE)
    assert target.fields == {"A": 1, "B": 2, "C": 3}
    assert target.update_fields == {"A": 1}


# --- product rows -------------------------------------------------------------------------------


def products_spec(products: str) -> MappingSpec:
    return spec_of(BASE + "fields: {}\nproducts: " + products + "\n")


@pytest.mark.parametrize(
    ("products", "product_id", "expected_id"),
    [
        ("{ids: {15: 301}}", 15, 301),
        ("{ids: {'15': '301'}}", 15, 301),
        ("{ids: {15: 301}}", "15", 301),
        ("{ids: {15: 301}}", 15.0, 301),
        ("{ids: {15: 301}}", "15.0", 301),
        ("{ids: {15: 301}}", "n/a", 0),
        ("{ids: {'015': 301}}", 15, 301),
        ("{ids: {15: 301}}", 16, 0),  # not in ids: free text
        ("{ids: {15: 301}}", 0, 0),
        ("{ids: {15: 301}}", None, 0),
        ("{ids: {15: 0}, unmapped: error}", 15, 0),  # explicitly mapped to free text
        ("{}", 15, 0),
    ],
)
def test_product_ids(products: str, product_id: Any, expected_id: int) -> None:
    row = {"PRODUCT_ID": product_id, "PRODUCT_NAME": "Thing", "PRICE": 5, "QUANTITY": 1}
    rows = transform({}, [row], products_spec(products), SOURCE).rows
    assert rows == [{"PRODUCT_ID": expected_id, "PRODUCT_NAME": "Thing", "PRICE": 5, "QUANTITY": 1}]


@pytest.mark.parametrize("product_id", [99, 0, None])
def test_unmapped_product_is_an_error_when_asked(product_id: Any) -> None:
    rows = [{"PRODUCT_ID": 15, "PRODUCT_NAME": "A"}, {"PRODUCT_ID": product_id, "PRODUCT_NAME": "Fan"}]
    with pytest.raises(MappingError, match=r"^products: row 2 \('Fan'\) has PRODUCT_ID"):
        transform({}, rows, products_spec("{ids: {15: 301}, unmapped: error}"), SOURCE)


def test_row_order_is_kept_and_unknown_keys_dropped() -> None:
    rows = [{"PRODUCT_ID": 0, "PRODUCT_NAME": name, "SORT": sort, "XML_ID": "x", "ID": 1}
            for name, sort in [("c", 30), ("a", 10), ("b", 20)]]
    out = transform({}, rows, products_spec("{}"), SOURCE).rows
    assert out == [{"PRODUCT_ID": 0, "PRODUCT_NAME": n, "SORT": s} for n, s in [("c", 30), ("a", 10), ("b", 20)]]


@pytest.mark.parametrize(
    ("products", "rows", "expected"),
    [
        ("{enabled: false}", ROWS, None),  # never touch the target's rows
        ("{enabled: false, unmapped: error}", ROWS, None),
        ("{}", [], []),  # no rows on the source: clear them on the target
    ],
)
def test_products_disabled_or_empty(
    products: str, rows: list[dict[str, Any]], expected: list[Any] | None
) -> None:
    assert transform({}, rows, products_spec(products), SOURCE).rows == expected


# --- purity and fingerprints --------------------------------------------------------------------


def test_transform_does_not_mutate_and_output_is_independent(tmp_path: Path) -> None:
    spec = load_mapping(write(tmp_path, EXAMPLE + "  # end\n"), {})
    deal, rows = copy.deepcopy(DEAL), copy.deepcopy(ROWS)
    spec_before = spec.model_dump()
    first = transform(deal, rows, spec, SOURCE)
    assert (deal, rows) == (DEAL, ROWS)
    first.fields["TITLE"] = "changed"
    first.rows[0]["PRICE"] = 0  # type: ignore[index]
    second = transform(deal, rows, spec, SOURCE)
    assert second.fields["TITLE"] == "Boiler (partner.bitrix24.ru)"
    assert second.rows[0]["PRICE"] == 1200.0  # type: ignore[index]
    assert rows == ROWS and spec.model_dump() == spec_before


def test_const_lists_are_copied() -> None:
    spec = fields_spec("T: {const: [1, 2]}")
    transform({}, [], spec, SOURCE).fields["T"].append(3)
    assert transform({}, [], spec, SOURCE).fields["T"] == [1, 2]


def target(update: dict[str, Any], rows: list[dict[str, Any]] | None) -> TargetDeal:
    return TargetDeal(fields=dict(update), update_fields=update, rows=rows)


def test_fingerprint_is_stable_across_key_order() -> None:
    a = target({"A": "1", "B": ["x", "y"]}, [{"PRODUCT_ID": 0, "PRICE": 5}])
    b = target({"B": ["x", "y"], "A": "1"}, [{"PRICE": 5, "PRODUCT_ID": 0}])
    assert fingerprint(a) == fingerprint(b)
    assert len(fingerprint(a)) == 64 and int(fingerprint(a), 16) >= 0


def test_fingerprint_ignores_create_only_fields(tmp_path: Path) -> None:
    spec = load_mapping(write(tmp_path, EXAMPLE), {})
    preparation = transform(DEAL, ROWS, spec, SOURCE)
    executing = transform({**DEAL, "STAGE_ID": "C1:EXECUTING"}, ROWS, spec, SOURCE)
    assert preparation.fields != executing.fields
    assert fingerprint(preparation) == fingerprint(executing)


@pytest.mark.parametrize(
    "other",
    [
        target({"A": "2", "B": ["x", "y"]}, [{"PRODUCT_ID": 0, "PRICE": 5}]),
        target({"A": "1", "B": ["y", "x"]}, [{"PRODUCT_ID": 0, "PRICE": 5}]),
        target({"A": "1"}, [{"PRODUCT_ID": 0, "PRICE": 5}]),
        target({"A": "1", "B": ["x", "y"]}, [{"PRODUCT_ID": 0, "PRICE": 6}]),
        target({"A": "1", "B": ["x", "y"]}, [{"PRODUCT_ID": 0, "PRICE": 5}] * 2),
        target({"A": "1", "B": ["x", "y"]}, []),
        target({"A": "1", "B": ["x", "y"]}, None),
    ],
)
def test_fingerprint_changes_with_content(other: TargetDeal) -> None:
    base = target({"A": "1", "B": ["x", "y"]}, [{"PRODUCT_ID": 0, "PRICE": 5}])
    assert fingerprint(other) != fingerprint(base)


# --- trigger ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "stage", "expected"),
    [
        ("", "ANY", True),
        ("trigger: {}\n", "ANY", True),
        ("trigger: {stages: []}\n", "ANY", True),
        ("trigger: {stages: [C1:NEW]}\n", "C1:NEW", True),
        ("trigger: {stages: [C1:NEW]}\n", "C1:WON", False),
        ("trigger: {stages: [C1:NEW]}\n", None, False),
    ],
)
def test_in_trigger(trigger: str, stage: str | None, expected: bool) -> None:
    spec = spec_of(BASE + "fields: {}\n" + trigger)
    assert in_trigger({"STAGE_ID": stage}, spec) is expected


# --- load-time errors: file, key path, line -----------------------------------------------------

HEAD = "link_field: UF_CRM_SRC\nfields:\n  TITLE: TITLE\n"  # lines 1-3


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        (HEAD + "  STAGE_ID: {from: STAGE_ID, mapp: {}}\n", "fields.STAGE_ID.mapp (line 4)", "Extra inputs"),
        (HEAD + "  title: TITLE\n", "fields.title (line 4)", "not a target field name"),
        (HEAD + "  T: '{source.x}'\n", "fields.T (line 4)", "unknown {source.x}"),
        (HEAD + "  T: {template: '{TITLE'}\n", "fields.T.template (line 4)", "never closed"),
        (HEAD + "  T: {template: 'a } b'}\n", "fields.T.template (line 4)", "single '}'"),
        (HEAD + "  T: {template: '{title}'}\n", "fields.T.template (line 4)", "not a source field"),
        (HEAD + "  T: Partner deal\n", "fields.T (line 4)", "for fixed text write {const: ...}"),
        (HEAD + "  T: 5\n", "fields.T (line 4)", "write {const: ...}"),
        (HEAD + "  T: {from: A, const: 1}\n", "fields.T (line 4)", "exactly one of const, from, template"),
        (HEAD + "  T: {default: 1}\n", "fields.T (line 4)", "exactly one of const, from, template"),
        (HEAD + "  T: {const: 1, map: {}}\n", "fields.T (line 4)", "map only go with from"),
        (HEAD + "  T: {const: {a: 1}}\n", "fields.T.const (line 4)", "not a mapping"),
        (HEAD + "  T: {from: null}\n", "fields.T (line 4)", "from must not be empty"),
        (HEAD + "  T: {from: A, map: 7}\n", "fields.T.map (line 4)", "name of an entry in tables"),
        (HEAD + "  T: {from: A, map: users}\n", "fields.T.map (line 4)", "no table 'users' in tables"),
        (HEAD + "  T:\n    from: A\n    map:\n      yes: '1'\n", "fields.T.map.True (line 7)", "quote it"),
        (HEAD + "  T:\n    from: A\n    map:\n      '1': 1.5\n", "fields.T.map.1 (line 7)", "quote it"),
        (HEAD + "  T:\n    from: A\n    map:\n      1: a\n      '1': b\n", "fields.T.map.1 (line 8)",
         "appears twice"),
        (HEAD + "create_only: [TITLE,\n  NOPE]\n", "create_only[1] (line 5)", "NOPE is not a key of fields"),
        (HEAD + "  UF_CRM_SRC: ID\n", "fields.UF_CRM_SRC (line 4)", "written by the relay"),
        (HEAD.replace("UF_CRM_SRC", "ORIGIN_ID") + "  ORIGINATOR_ID: {const: x}\n",
         "fields.ORIGINATOR_ID (line 4)", "written by the relay"),
        ("fields: {}\nlink_field: SRC_DEAL\n", "link_field (line 2)", "ORIGIN_ID or a custom field"),
        ("fields: {}\n", "link_field (line 1)", "Field required"),
        ("link_field: ORIGIN_ID\n", "fields (line 1)", "Field required"),
        (HEAD + "field: {}\n", "field (line 4)", "Extra inputs"),
        (HEAD + "products:\n  unmapped: drop\n", "products.unmapped (line 5)", "'free_text' or 'error'"),
        (HEAD + "products:\n  ids:\n    abc: 1\n", "products.ids.abc (line 6)", "whole number"),
        (HEAD + "products:\n  ids:\n    15: -1\n", "products.ids.15 (line 6)", "greater than or equal to 0"),
        (HEAD + "products: {enabled: maybe}\n", "products.enabled (line 4)", "valid boolean"),
        (HEAD + "trigger: {stage: [A]}\n", "trigger.stage (line 4)", "Extra inputs"),
        (HEAD + "tables:\n  users: [1, 2]\n", "tables.users (line 5)", "valid dictionary"),
    ],
)
def test_load_errors_name_file_key_path_and_line(
    tmp_path: Path, text: str, where: str, fragment: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_mapping(path, {})
    head, *rest = str(info.value).splitlines()
    assert head.startswith(f"{path}: invalid configuration")
    assert any(line.startswith(f"{path}: {where}: ") and fragment in line for line in rest), rest


def test_missing_environment_variable(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "  SOURCE_ID: {const: '${PARTNER_CODE}'}\n")
    with pytest.raises(ConfigError) as info:
        load_mapping(path, {})
    assert str(info.value) == (
        f"{path}: fields.SOURCE_ID.const (line 4): environment variable PARTNER_CODE is not set")
    spec = load_mapping(path, {"PARTNER_CODE": "ACME"})
    assert transform({}, [], spec, SOURCE).fields["SOURCE_ID"] == "ACME"


def test_unreadable_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_mapping(tmp_path / "nope.yaml", {})


def test_spec_is_frozen() -> None:
    spec = fields_spec("T: TITLE")
    with pytest.raises(Exception, match="frozen"):
        spec.link_field = "ORIGIN_ID"  # type: ignore[misc]
