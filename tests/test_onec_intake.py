"""Pure: decoding what 1C modules post (both generations, byte-level quirks) and the 1C mapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from relay.errors import BadRequest, ConfigError, MappingError
from relay.intake.onec import currency, decode
from relay.mapping.onec import camel, company_record, load_onec_mapping, transform

ROOT = Path(__file__).resolve().parents[1]


def body(data: Any, *, bom: bool = False, encoding: str = "utf-8") -> bytes:
    text = json.dumps(data, ensure_ascii=False, indent="\t")
    raw = text.encode(encoding)
    return (b"\xef\xbb\xbf" if bom else b"") + raw


INVOICE = {"action": "create", "invoiceData": {
    "СсылкаДокумента": "Поступление товаров и услуг 0000-000123 от 15.01.2024 10:30:00",
    "НомерДокумента": "0000-000123", "ДатаДокумента": "2024-01-15T10:30:00", "Постачальник": "ТОВ Ромашка",
    "СуммаДокумента": 1500, "КодВалюты": "980",
    "positions": [{"НаименованиеТовара": "Болт", "КодТовара": "00045", "Количество": 2, "Цена": 10, "Сумма": 20}]}}


@pytest.mark.parametrize("raw", [body(INVOICE), body(INVOICE, bom=True), body(INVOICE, encoding="utf-16")])
def test_the_old_generation_with_and_without_a_bom_or_in_utf16(raw: bytes) -> None:
    call = decode("incoming", raw, timezone="Europe/Kyiv")
    assert call.key == "incoming:0000-000123:2024" and call.action == "upsert"
    assert call.data["ДатаДокумента"] == "2024-01-15T10:30:00+02:00"
    assert call.data["Валюта"] == "UAH" and call.data["СуммаДокумента"] == 1500.0
    assert call.data["positions"][0] == {"НаименованиеТовара": "Болт", "КодТовара": "00045", "ЕдиницаИзмерения": "",
                                         "Количество": 2.0, "Цена": 10.0, "Сумма": 20.0}


def test_summer_time_empty_dates_text_numbers_and_booleans() -> None:
    data = json.loads(json.dumps(INVOICE))
    inv = data["invoiceData"]
    inv.update({"ДатаДокумента": "2024-07-01T09:00:00", "ДатаОплаты": "0001-01-01T00:00:00",
                "СуммаДокумента": "1 500,50", "Проведен": "Да", "Guid": "8A3C2F4E-1B2D-11EE-9F3A-005056A1B2C3"})
    call = decode("outgoing", body(data), timezone="Europe/Kyiv")
    assert call.data["ДатаДокумента"] == "2024-07-01T09:00:00+03:00" and call.data["ДатаОплаты"] is None
    assert call.data["СуммаДокумента"] == 1500.5 and call.data["Проведен"] is True
    assert call.key == "outgoing:8a3c2f4e-1b2d-11ee-9f3a-005056a1b2c3"


@pytest.mark.parametrize("change, words", [
    ({"НомерДокумента": ""}, "НомерДокумента is empty"),
    ({"ДатаДокумента": "15.01.2024"}, "ДатаДокумента must be a date"),
    ({"ДатаДокумента": "2024-02-30T00:00:00"}, "not a real date"),
    ({"СуммаДокумента": "много"}, "СуммаДокумента must be a number"),
    ({"СуммаДокумента": True}, "not a boolean"),
    ({"positions": {"a": 1}}, "positions must be a list"),
    ({"positions": [{"Количество": "два"}]}, "positions[0].Количество must be a number"),
    ({"positions": ["x"]}, "positions[0] must be an object"),
    ({"Guid": "123"}, "Guid must be XMLСтрока(Ссылка)"),
    ({"Постачальник": {"x": 1}}, "Постачальник must be text"),
])
def test_wrong_values_name_the_key(change: dict[str, Any], words: str) -> None:
    data = json.loads(json.dumps(INVOICE))
    data["invoiceData"].update(change)
    with pytest.raises(BadRequest) as err:
        decode("incoming", body(data))
    assert words in err.value.message


@pytest.mark.parametrize("raw, words", [
    (b"", "empty body"), (b"\xff\x00garbage", "not UTF-8"), (b"[1]", "must be an object"),
    (b'{"action": "create"}', "\"invoiceData\" is missing"), (b'{"invoiceData": {}}', "it is missing"),
    (b"[" * 5000, "nests deeper"),
])
def test_malformed_bodies(raw: bytes, words: str) -> None:
    with pytest.raises(BadRequest) as err:
        decode("incoming", raw)
    assert words in err.value.message


def test_currency_codes() -> None:
    assert [currency(c) for c in ("980", "840", "978", "643", "uah", "", "999", "грн")] == [
        "UAH", "USD", "EUR", "RUB", "UAH", "", "", ""]


def test_the_example_mapping_and_the_transform(tmp_path: Path) -> None:
    spec = load_onec_mapping(ROOT / "config/mappings/1c.example.yaml", {})
    call = decode("outgoing", body({**INVOICE, "invoiceData": {**INVOICE["invoiceData"], "Клиент": "ТОВ Ромашка",
                                                                "КодКлиента": "000123"}}))
    assert spec.outgoing is not None
    doc = transform(call.data, spec, spec.outgoing, {"id": "main"}, {"00099": 7})
    assert doc.fields["TITLE"] == "Рахунок 0000-000123" and doc.fields["CURRENCY_ID"] == "UAH"
    assert doc.rows == [{"productId": 301, "productName": "Болт", "price": 10.0, "quantity": 2.0}]
    assert "STAGE_ID" not in doc.update_fields and doc.fields["STAGE_ID"] == "C3:NEW"
    assert company_record("outgoing", call.data)[0] == "client:000123"
    assert [camel(n) for n in ("TITLE", "ASSIGNED_BY_ID", "BEGINDATE", "UF_CRM_X_Y")] == [
        "title", "assignedById", "begindate", "UF_CRM_X_Y"]
    strict = spec.outgoing.model_copy(update={"products": spec.outgoing.products.model_copy(
        update={"ids": {}, "unmapped": "error"})})
    with pytest.raises(MappingError, match="00045"):
        transform(call.data, spec, strict, {"id": "main"})


@pytest.mark.parametrize("text, words", [
    ("clients: {fields: {TITLE: {from: Наименование, map: nope}}}\n", "no table 'nope'"),
    ("outgoing: {fields: {TITLE: '{НомерДокумента'}}\n", "never closed"),
    ("outgoing: {fields: {TITLE: Наименование}}\n", "need a clients section"),
    ("clients: {fields: {TITLE: 'Кл{ієнт}'}}\n", ""),
    ("clients: {fields: {TITLE: '1abc'}}\n", "not a key the 1C module sends"),
])
def test_1c_mapping_errors_name_file_and_line(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "1c.yaml"
    path.write_text(text, encoding="utf-8")
    if not words:
        load_onec_mapping(path, {})  # Cyrillic keys in templates are fine
        return
    with pytest.raises(ConfigError) as err:
        load_onec_mapping(path, {})
    assert words in str(err.value) and "line 1" in str(err.value)


BASE_YAML = """
target: {webhook_url: "https://esb.example/rest/1/abcdefgh/"}
onec:
  - %s
"""


@pytest.mark.parametrize("base, words", [
    ("{id: main, token: short, mapping: 1c.yaml}", "at least 16 characters"),
    ("{id: main, mapping: 1c.yaml}", "give a token"),
    ("{id: main, token: 0123456789abcdef0, mapping: 1c.yaml, timezone: Mars/Olympus}", "unknown time zone"),
    ("{id: main, allow_ips: [10.0.0.300], mapping: 1c.yaml}", "not an IP address"),
    ("{id: main, token: 0123456789abcdef0, mapping: nope.yaml}", "no such file"),
])
def test_1c_base_configuration_errors(tmp_path: Path, base: str, words: str) -> None:
    from relay.config import load_config

    (tmp_path / "1c.yaml").write_text("clients: {fields: {TITLE: Наименование}}\n", encoding="utf-8")
    path = tmp_path / "relay.yaml"
    path.write_text(BASE_YAML % base, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path, {})
    assert words in str(err.value)


def test_a_1c_only_relay_loads_and_ids_must_be_unique(tmp_path: Path) -> None:
    from relay.config import load_config

    (tmp_path / "1c.yaml").write_text("clients: {fields: {TITLE: Наименование}}\n", encoding="utf-8")
    path = tmp_path / "relay.yaml"
    path.write_text(BASE_YAML % "{id: main, token: 0123456789abcdef0, mapping: 1c.yaml}", encoding="utf-8")
    config = load_config(path, {})
    assert config.onec_base("main") is not None and config.file.sources == []
    assert "0123456789abcdef0" in config.secrets()
    path.write_text(BASE_YAML % "{id: main, token: 0123456789abcdef0, mapping: 1c.yaml}\n  - "
                    "{id: main, token: 0123456789abcdef1, mapping: 1c.yaml}", encoding="utf-8")
    with pytest.raises(ConfigError, match="unique"):
        load_config(path, {})
