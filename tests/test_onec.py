"""1C:Enterprise intake (issue 9): counterparties and invoices posted as the seed modules post them
land on the ESB portal exactly once, in their latest state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.relayenv import RelayEnv, start, stop

pytestmark = pytest.mark.e2e
TOKEN = "onec-main-token-0123456789abcdef"
MAPPING = """
clients:
  fields: {TITLE: Наименование, PHONE: Телефон, EMAIL: Email, ADDRESS: Адрес}
  match: [stamp, requisite: RQ_EDRPOU, requisite: RQ_INN, title]
  on_match: update
  requisite: {preset_id: 4, fields: [RQ_EDRPOU, RQ_INN]}
  deletes: comment
outgoing:
  target: deal
  fields:
    TITLE: "Рахунок {НомерДокумента}"
    OPPORTUNITY: СуммаДокумента
    CURRENCY_ID: Валюта
    CATEGORY_ID: {const: 3}
    STAGE_ID: {const: "C3:NEW"}
    BEGINDATE: ДатаДокумента
    COMMENTS: Комментарий
  create_only: [CATEGORY_ID, STAGE_ID]
  products: {ids: {"00045": 301}, unmapped: free_text}
  deletes: {policy: stage, stage: "C3:LOSE"}
incoming:
  target: deal
  fields:
    TITLE: "Накладна {НомерДокумента} від {Постачальник}"
    OPPORTUNITY: СуммаДокумента
    CURRENCY_ID: Валюта
    CATEGORY_ID: {const: 3}
    STAGE_ID: {const: "C3:NEW"}
  create_only: [CATEGORY_ID, STAGE_ID]
"""


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RelayEnv]:
    (tmp_path / "mappings").mkdir(parents=True, exist_ok=True)
    (tmp_path / "mappings/1c-main.yaml").write_text(MAPPING, encoding="utf-8")
    extra = f"onec:\n  - {{id: main, token: {TOKEN}, mapping: mappings/1c-main.yaml, timezone: Europe/Kyiv}}\n"
    env = start(tmp_path, extra=extra)
    yield env
    stop(env)


def post(env: RelayEnv, path: str, body: Any, *, bom: bool = True, token: str | None = TOKEN,
         headers: dict[str, str] | None = None) -> requests.Response:
    """POST as 1C's HTTPЗапрос does: ЗаписатьJSON (pretty, tabs), UTF-8 with a BOM, no charset."""
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False, indent="\t").encode()
    if bom and not isinstance(body, bytes):
        data = b"\xef\xbb\xbf" + data
    sent = {"Content-Type": "application/json", "User-Agent": "1C-Enterprise/8.3", **(headers or {})}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    return requests.post(f"{env.url}/api/webhook/1c/{path}", data=data, headers=sent, timeout=10)


def client(action: str, phone: str, *, old: bool = False) -> dict[str, Any]:
    data = {"Код": "000123", "Наименование": "ТОВ Ромашка", "ИНН": "3456789012", "Телефон": phone,
            "Email": "info@romashka.ua", "Адрес": "Київ, вул. Хрещатик, 1"}
    if old:  # the first generation (seed 000) sends no address and no e-mail
        data.pop("Адрес")
        data.pop("Email")
    return {"action": action, "clientData": data}


def outgoing(action: str = "update", *, qty: float = 2, old: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "СсылкаДокумента": "Счет на оплату покупателю 0000-000777 от 15.01.2024 10:30:00",
        "НомерДокумента": "0000-000777", "ДатаДокумента": "2024-01-15T10:30:00", "Клиент": "ТОВ Ромашка",
        "ЄДРПОУ": "12345678", "СуммаДокумента": 1500.5, "КодВалюты": "980", "Проведен": True, "Комментарий": "",
        "ДатаОплаты": "0001-01-01T00:00:00", "КодКлиента": "000123", "ИННКлиента": "3456789012",
        "positions": [
            {"НаименованиеТовара": "Котел X200", "КодТовара": "00045", "Количество": 1, "Цена": 1200, "Сумма": 1200,
             "ЕдиницаИзмерения": "шт"},
            {"НаименованиеТовара": "Монтаж", "КодТовара": "00901", "Количество": qty, "Цена": 100, "Сумма": 100 * qty,
             "ЕдиницаИзмерения": "посл"},
            {"НаименованиеТовара": "Доставка", "КодТовара": "00902", "Количество": 1, "Цена": 100.5, "Сумма": 100.5,
             "ЕдиницаИзмерения": "посл"}]}
    if old:
        for key in ("ЄДРПОУ", "Проведен", "Комментарий", "ДатаОплаты", "КодКлиента", "ИННКлиента"):
            data.pop(key)
        for p in data["positions"]:
            p.pop("ЕдиницаИзмерения")
    return {"action": action, "invoiceData": data}


def ours(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if str(r.get("ORIGINATOR_ID") or "").startswith("b24relay:1c.main")]


def test_counterparty_create_update_delete_leaves_one_company(env: RelayEnv) -> None:
    for n, body in enumerate([client("create", "+380 44 000 00 01", old=True),
                              client("update", "+380 44 000 00 02")]):
        answer = post(env, "clients", body, bom=n == 0)
        assert answer.status_code == 200 and answer.json()["ok"] is True, answer.text
        env.settle()
    [company] = env.target.companies()
    assert company["TITLE"] == "ТОВ Ромашка" and company["ORIGIN_ID"] == "client:000123"
    assert [p["VALUE"] for p in company["PHONE"]] == ["+380 44 000 00 02"]
    assert [r["RQ_INN"] for r in env.target.requisites() if str(r["ENTITY_ID"]) == str(company["ID"])] == [
        "3456789012"]
    assert post(env, "clients", client("delete", "+380 44 000 00 02")).status_code == 200
    env.settle()
    assert len(env.target.companies()) == 1
    [comment] = [c for c in env.target.comments() if c["ENTITY_TYPE"] == "company"]
    assert "deleted in 1C" in comment["COMMENT"]


def test_outgoing_invoice_lands_once_with_rows_currency_and_company(env: RelayEnv) -> None:
    assert post(env, "clients", client("update", "+380 44 000 00 01")).status_code == 200
    for _ in range(10):
        assert post(env, "outgoing-invoices", outgoing()).status_code == 200
        env.settle()
    [deal] = env.target.deals()
    assert deal["TITLE"] == "Рахунок 0000-000777" and deal["CURRENCY_ID"] == "UAH"
    assert float(deal["OPPORTUNITY"]) == 1500.5
    [company] = env.target.companies()
    assert str(deal["COMPANY_ID"]) == str(company["ID"])
    rows = env.target.rows(int(deal["ID"]))
    assert [(r["PRODUCT_ID"], r["PRODUCT_NAME"], float(r["QUANTITY"])) for r in rows] == [
        (301, "Котел X200", 1.0), (0, "Монтаж", 2.0), (0, "Доставка", 1.0)]
    writes = [r for r in env.target.requests if "crm.item.update" in (r.inner or (r.method,))]
    assert writes == []  # nine repeats wrote nothing
    assert post(env, "outgoing-invoices", outgoing(qty=3)).status_code == 200
    env.settle()
    [deal] = env.target.deals()
    assert [float(r["QUANTITY"]) for r in env.target.rows(int(deal["ID"]))] == [1.0, 3.0, 1.0]


def test_incoming_invoice_of_an_unknown_supplier_creates_the_company_in_the_same_round(env: RelayEnv) -> None:
    body = outgoing(old=True)
    data = body["invoiceData"]
    data["Постачальник"] = data.pop("Клиент")
    data["СсылкаДокумента"] = "Поступление товаров и услуг 0000-000123 от 15.01.2024 10:30:00"
    assert post(env, "invoices", body).status_code == 200
    env.settle()
    [company] = env.target.companies()
    [deal] = env.target.deals()
    assert company["TITLE"] == "ТОВ Ромашка" and str(deal["COMPANY_ID"]) == str(company["ID"])
    [job] = env.store.jobs(kind="sync")
    assert job.status == "done" and job.attempts <= 1


@pytest.mark.parametrize("headers, token, status", [({}, None, 401), ({}, "wrong-token-0123456789abcdef", 403),
                                                    ({"X-Relay-Token": TOKEN}, None, 200)])
def test_tokens(env: RelayEnv, headers: dict[str, str], token: str | None, status: int) -> None:
    answer = post(env, "clients", client("update", "1"), token=token, headers=headers)
    assert answer.status_code == status, answer.text
    assert len(env.store.jobs(kind="sync")) == (1 if status == 200 else 0)


@pytest.mark.parametrize("body, words", [
    (b"{not json", "not valid JSON"),
    ({"action": "update"}, "clientData"),
    ({"action": "update", "clientData": "x"}, "not an object"),
    ({"action": "save", "clientData": {"Код": "1"}}, "action"),
    ({"action": "update", "clientData": {"Наименование": "x"}}, "Код"),
])
def test_bad_bodies_get_400_naming_the_problem(env: RelayEnv, body: Any, words: str) -> None:
    answer = post(env, "clients", body)
    assert answer.status_code == 400 and words in answer.json()["error"]
    assert env.store.jobs(kind="sync") == []


def test_500_documents_from_4_senders_through_503s_and_lost_replies_land_once_in_their_latest_state(
        tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir(parents=True, exist_ok=True)
    (tmp_path / "mappings/1c-main.yaml").write_text(MAPPING, encoding="utf-8")
    extra = f"onec:\n  - {{id: main, token: {TOKEN}, mapping: mappings/1c-main.yaml}}\n"
    env = start(tmp_path, extra=extra, batch_size=50, create_margin=0.5)
    try:
        env.target.inject("query_limit", times=15)
        env.target.inject("lost_reply", method="batch", times=6)
        env.target.inject("server_error", times=5)

        def doc(n: int, version: int) -> dict[str, Any]:
            body = outgoing(qty=version)
            data = body["invoiceData"]
            data["НомерДокумента"] = f"0000-{n:06d}"
            data["КодКлиента"] = f"{n % 20:06d}"
            data["Клиент"] = f"Клієнт {n % 20}"
            data["ЄДРПОУ"] = f"{10000000 + n % 20}"
            data["Комментарий"] = f"v{version}"
            return body

        from concurrent.futures import ThreadPoolExecutor
        calls = [(n, v) for v in (1, 2, 3) for n in range(500) if v == 1 or n % 5 == v]  # some change later
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda c: post(env, "outgoing-invoices", doc(*c)).status_code, calls))
        assert answers == [200] * len(calls)
        env.settle(timeout=120)
        deals = env.target.deals()
        keys = sorted(d["ORIGIN_ID"] for d in deals)
        assert keys == sorted(f"outgoing:0000-{n:06d}:2024" for n in range(500))  # once each
        latest = {n: max(v for m, v in calls if m == n) for n in range(500)}
        for deal in deals:
            n = int(deal["ORIGIN_ID"].split(":")[1].split("-")[1])
            assert deal["COMMENTS"] == f"v{latest[n]}", deal["ORIGIN_ID"]
        assert len(env.target.companies()) == 20
        assert env.store.jobs(kind="sync", status="dead", limit=5) == []
    finally:
        stop(env)


def test_a_dead_1c_job_is_replayed_with_its_data_and_the_admin_lists_it(env: RelayEnv) -> None:
    body = outgoing()
    env.target.inject("command_error", method="crm.item.add", times=1, code="", status=400,
                      description="Required fields are not filled: Title")
    assert post(env, "outgoing-invoices", body).status_code == 200
    env.settle()
    [dead] = [j for j in env.store.jobs(kind="sync") if j.status == "dead"]
    assert dead.payload["data"]["НомерДокумента"] == "0000-000777" and "Title" in (dead.last_error or "")
    queued = env.store.replay(dead.id)  # what `relay replay JOB` and POST /admin/replay do
    again = env.store.job(queued.job_id)
    assert again is not None and again.payload == dead.payload and again.status == "pending"
    env.settle()
    assert [d["ORIGIN_ID"] for d in env.target.deals()] == ["outgoing:0000-000777:2024"]


def test_other_paths_and_oversize_bodies(env: RelayEnv) -> None:
    assert post(env, "orders", client("update", "1")).status_code == 404
    big = {"action": "update", "clientData": {"Код": "1", "Наименование": "x" * (4 * 1024 * 1024)}}
    answer = post(env, "clients", big)
    assert answer.status_code == 413 and "ingress.onec_max_body_bytes" in answer.json()["error"]
    assert env.store.jobs(kind="sync") == []
    many = outgoing()  # an invoice of 600 positions (about 4,000 JSON values) is one call
    many["invoiceData"]["positions"] = many["invoiceData"]["positions"][:1] * 600
    assert post(env, "outgoing-invoices", many).status_code == 200
    status = requests.get(f"{env.url}/status", timeout=5).json()
    assert status["onec"] == [{"id": "main", "mapping": "1c-main.yaml", "token": True, "allow_ips": 0}]
    assert TOKEN not in json.dumps(status)


def test_smart_invoices_with_products_found_by_xml_id(tmp_path: Path) -> None:
    funnel = '    CATEGORY_ID: {const: 3}\n    STAGE_ID: {const: "C3:NEW"}\n    BEGINDATE: ДатаДокумента\n'
    mapping = MAPPING.replace("outgoing:\n  target: deal", "outgoing:\n  target: invoice").replace(
        funnel, "    BEGINDATE: ДатаДокумента\n",
    ).replace('  create_only: [CATEGORY_ID, STAGE_ID]\n  products: {ids: {"00045": 301}, unmapped: free_text}\n'
              '  deletes: {policy: stage, stage: "C3:LOSE"}',
              '  products: {ids: {"00045": 301}, xml_id: true, unmapped: free_text}\n  deletes: delete')
    assert "target: invoice" in mapping and "xml_id: true" in mapping and "deletes: delete" in mapping
    (tmp_path / "mappings").mkdir(parents=True, exist_ok=True)
    (tmp_path / "mappings/1c-main.yaml").write_text(mapping, encoding="utf-8")
    env = start(tmp_path, extra=f"onec:\n  - {{id: main, token: {TOKEN}, mapping: mappings/1c-main.yaml}}\n")
    try:
        montage = env.target.add_product("Монтаж (ESB)", 100.0, xml_id="00901")
        for _ in range(3):
            assert post(env, "outgoing-invoices", outgoing()).status_code == 200
            env.settle()
        assert env.target.deals() == []
        [invoice] = env.target.items(31)
        assert invoice["title"] == "Рахунок 0000-000777" and invoice["currencyId"] == "UAH"
        assert invoice["xmlId"] == "b24relay:1c.main:outgoing:0000-000777:2024"
        [company] = env.target.companies()
        assert int(invoice["companyId"]) == int(company["ID"])
        rows = env.target.item_rows(31, int(invoice["id"]))
        assert [(r["productId"], float(r["quantity"])) for r in rows] == [(301, 1.0), (montage, 2.0), (0, 1.0)]
        assert post(env, "outgoing-invoices", outgoing("delete")).status_code == 200
        env.settle()
        assert env.target.items(31) == []
    finally:
        stop(env)


def test_an_allowed_address_needs_no_token_and_others_still_do(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir(parents=True, exist_ok=True)
    (tmp_path / "mappings/1c-main.yaml").write_text(MAPPING, encoding="utf-8")
    extra = ("onec:\n  - {id: old, allow_ips: ['127.0.0.0/8'], mapping: mappings/1c-main.yaml}\n"
             f"  - {{id: main, token: {TOKEN}, allow_ips: ['10.9.9.9'], mapping: mappings/1c-main.yaml}}\n")
    env = start(tmp_path, extra=extra)
    try:
        assert post(env, "clients", client("update", "1"), token=None).status_code == 200  # base "old" by address
        assert post(env, "clients", client("update", "2")).status_code == 200  # base "main" by its token
        assert sorted(j.source_id for j in env.store.jobs(kind="sync")) == ["main", "old"]
    finally:
        stop(env)


def test_switching_to_the_improved_module_duplicates_nothing(env: RelayEnv) -> None:
    assert post(env, "outgoing-invoices", outgoing()).status_code == 200  # the old module: no Guid
    env.settle()
    body = outgoing(qty=5)
    body["invoiceData"]["Guid"] = "8a3c2f4e-1b2d-11ee-9f3a-005056a1b2c3"  # the improved module
    answer = post(env, "outgoing-invoices", body)
    assert answer.json()["key"] == "outgoing:8a3c2f4e-1b2d-11ee-9f3a-005056a1b2c3"
    env.settle()
    [deal] = env.target.deals()
    assert deal["ORIGIN_ID"] == "outgoing:8a3c2f4e-1b2d-11ee-9f3a-005056a1b2c3"
    assert [float(r["QUANTITY"]) for r in env.target.rows(int(deal["ID"]))] == [1.0, 5.0, 1.0]


def test_error_texts_are_readable_utf8(env: RelayEnv) -> None:
    answer = post(env, "invoices", {"action": "update", "invoiceData": {"Постачальник": "x"}})
    assert answer.status_code == 400
    assert "НомерДокумента".encode() in answer.content  # not \\u041d… escapes: the 1C log shows it as is


def test_preview_of_a_stored_1c_invoice_shows_fields_rows_and_diff_and_writes_nothing(env: RelayEnv) -> None:
    import subprocess
    import sys

    relay = str(Path(sys.executable).with_name("relay"))
    assert post(env, "outgoing-invoices", outgoing()).status_code == 200
    [job] = env.store.jobs(kind="sync")
    fresh = subprocess.run([relay, "preview", "--job", str(job.id)], env=env.process_env(), capture_output=True,
                           text=True, timeout=60)
    assert fresh.returncode == 0, fresh.stderr
    assert "would CREATE" in fresh.stdout and "crm.item.add (entityTypeId 2)" in fresh.stdout
    assert '"Рахунок 0000-000777"' in fresh.stdout and "product rows (3)" in fresh.stdout
    env.settle()
    assert post(env, "outgoing-invoices", outgoing(qty=3)).status_code == 200
    newest = env.store.jobs(kind="sync", status="pending")[0]
    env.target.reset_log()
    again = subprocess.run([relay, "preview", "--job", str(newest.id), "--json"], env=env.process_env(),
                           capture_output=True, text=True, timeout=60)
    result = json.loads(again.stdout)
    assert result["action"] == "update" and result["target_id"] == ours(env.target.deals())[0]["ID"]
    assert result["diff"] == [] and result["rows_diff"] == "changed"  # only a quantity changed: 2 -> 3
    unchanged = subprocess.run([relay, "preview", "--job", str(job.id), "--json"], env=env.process_env(),
                               capture_output=True, text=True, timeout=60)
    assert json.loads(unchanged.stdout)["rows_diff"] == "same"  # what was sent first is what is there
    assert result["rows"][1]["quantity"] == 3
    assert [m for r in env.target.requests for m in r.inner] == ["crm.item.get", "crm.item.productrow.list"] * 2


def test_mapping_check_reads_the_target_for_a_1c_mapping(env: RelayEnv, tmp_path: Path) -> None:
    import subprocess
    import sys

    relay = str(Path(sys.executable).with_name("relay"))
    ok = subprocess.run([relay, "mapping", "check", "--source", "main", "--quiet"], env=env.process_env(),
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    path = tmp_path / "mappings/1c-main.yaml"
    path.write_text(MAPPING.replace('STAGE_ID: {const: "C3:NEW"}\n    BEGINDATE', 'STAGE_ID: {const: "C3:NEU"}\n'
                                    '    BEGINDATE').replace('"00045": 301', '"00045": 399'), encoding="utf-8")
    bad = subprocess.run([relay, "mapping", "check", "--source", "main", "--quiet"], env=env.process_env(),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    lines = [line for line in bad.stdout.splitlines() if line.startswith(str(path))]
    assert len(lines) == 2, bad.stdout
    assert any(":15:" in line and "stage C3:NEU does not exist" in line and "C3:NEW" in line for line in lines)
    assert any(":19:" in line and "product 399 does not exist in the target catalog" in line for line in lines)
