"""PHP-style bracket keys, both directions."""

import pytest

from relay.phpquery import Ref, build_query, nest_mapping, parse_query


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=7405",
         {"event": "ONCRMDEALUPDATE", "data": {"FIELDS": {"ID": "7405"}}}),
        ("data[FIELDS][ID]=7405&auth[domain]=a.bitrix24.com",
         {"data": {"FIELDS": {"ID": "7405"}}, "auth": {"domain": "a.bitrix24.com"}}),
        ("document_id[0]=crm&document_id[1]=CCrmDocumentDeal&document_id[2]=DEAL_123",
         {"document_id": ["crm", "CCrmDocumentDeal", "DEAL_123"]}),
        ("a[]=x&a[]=y", {"a": ["x", "y"]}),
        ("a[1]=x&a[3]=y", {"a": {"1": "x", "3": "y"}}),
        ("k=1&k=2", {"k": "2"}),
        ("empty=", {"empty": ""}),
        ("t=a+b%26c", {"t": "a b&c"}),
    ],
)
def test_parse_query(query: str, expected: dict) -> None:
    assert parse_query(query) == expected


def test_nest_mapping_for_json_with_bracket_keys() -> None:
    assert nest_mapping({"data[FIELDS][ID]": "5", "auth": {"x": 1}}) == {
        "data": {"FIELDS": {"ID": "5"}}, "auth": {"x": 1}}


def test_build_query_matches_http_build_query() -> None:
    q = build_query({"id": 5, "fields": {"TITLE": "a b&c", "UF": ["x", "y"], "NONE": None}, "flag": True})
    assert q == "id=5&fields%5BTITLE%5D=a+b%26c&fields%5BUF%5D%5B0%5D=x&fields%5BUF%5D%5B1%5D=y&flag=1"


def test_build_query_keeps_batch_references_literal() -> None:
    assert build_query({"id": Ref("a0"), "x": Ref("f", (0, "ID"))}) == "id=$result[a0]&x=$result[f][0][ID]"


def test_round_trip() -> None:
    data = {"fields": {"TITLE": "Ünïcode & more=1", "LIST": ["1", "2"]}, "rows": [{"PRICE": "1.5"}]}
    assert parse_query(build_query(data)) == data
