"""File custom fields: fileData uploads, keep/delete rules, crm.deal.get links vs crm.item.get urlMachine."""

from __future__ import annotations

import base64

import requests

from relay.phpquery import build_query


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _portal(make_portal):
    return make_portal(enforce_rate=False, uf_fields={"UF_CRM_DOC": "file", "UF_CRM_DOCS": "file"},
                       uf_multiple=["UF_CRM_DOCS"])


def test_legacy_upload_and_browser_only_links(make_portal, rest):
    portal = _portal(make_portal)
    reply = rest(portal, "crm.deal.add", {"fields": {
        "TITLE": "with files", "UF_CRM_DOC": {"fileData": ["a.pdf", _b64(b"%PDF-a")]},
        "UF_CRM_DOCS": [{"fileData": ["1.txt", _b64(b"one")]}, {"fileData": ["2.txt", _b64(b"two")]}]}})
    deal_id = reply.json()["result"]
    got = rest(portal, "crm.deal.get", {"id": deal_id}).json()["result"]
    single = got["UF_CRM_DOC"]
    assert set(single) == {"id", "showUrl", "downloadUrl"}
    assert single["showUrl"].startswith("/bitrix/components/") and f"fileId={single['id']}" in single["showUrl"]
    assert requests.get(portal.url + single["downloadUrl"], timeout=5).status_code == 404  # needs a browser
    assert [f["id"] for f in got["UF_CRM_DOCS"]] == [f[0] for f in portal.files_of(deal_id, "UF_CRM_DOCS")]
    assert [(n, c) for _, n, c in portal.files_of(deal_id, "UF_CRM_DOCS")] == [("1.txt", b"one"), ("2.txt", b"two")]
    assert portal.files_of(deal_id, "UF_CRM_DOC")[0][1:] == ("a.pdf", b"%PDF-a")


def test_item_get_url_machine_downloads_with_the_webhook(make_portal, rest):
    portal = _portal(make_portal)
    deal_id = portal.add_deal({"TITLE": "t"})
    file_id = portal.add_file_to_deal(deal_id, "UF_CRM_DOC", "scan.png", b"\x89PNG bytes")
    item = rest(portal, "crm.item.get", {"entityTypeId": 2, "id": deal_id}).json()["result"]["item"]
    value = item["ufCrmDoc"]
    assert value["id"] == file_id and set(value) == {"id", "url", "urlMachine"}
    assert item["ufCrmDocs"] == []
    got = requests.get(value["urlMachine"], timeout=5, headers={"User-Agent": "relay", "Referer": portal.url})
    assert got.status_code == 200 and got.content == b"\x89PNG bytes"
    assert "scan.png" in got.headers["Content-Disposition"]
    no_secret = value["urlMachine"].replace(portal.config.secret, "wrong")
    assert requests.get(no_secret, timeout=5).status_code == 401
    forged = value["urlMachine"].replace(f"fileId={file_id}", f"fileId={file_id + 1}")
    assert requests.get(forged, timeout=5).json()["error"] == "NOT_FOUND"


def test_item_update_keeps_by_id_and_deletes_the_rest(make_portal, rest):
    portal = _portal(make_portal)
    deal_id = portal.add_deal({})
    keep = portal.add_file_to_deal(deal_id, "UF_CRM_DOCS", "keep.txt", b"k")
    drop = portal.add_file_to_deal(deal_id, "UF_CRM_DOCS", "drop.txt", b"d")
    reply = rest(portal, "crm.item.update", {"entityTypeId": 2, "id": deal_id, "fields": {
        "ufCrmDocs": [{"id": keep}, ["new.txt", _b64(b"n")]], "ufCrmDoc": ["one.pdf", _b64(b"1")]}})
    item = reply.json()["result"]["item"]
    ids = [f["id"] for f in item["ufCrmDocs"]]
    assert ids[0] == keep and drop not in ids and len(ids) == 2
    assert [n for _, n, _ in portal.files_of(deal_id, "UF_CRM_DOCS")] == ["keep.txt", "new.txt"]
    single = portal.files_of(deal_id, "UF_CRM_DOC")[0][0]
    rest(portal, "crm.item.update", {"entityTypeId": 2, "id": deal_id, "fields": {"ufCrmDoc": {"id": single}}})
    assert portal.files_of(deal_id, "UF_CRM_DOC")[0][0] == single
    rest(portal, "crm.item.update", {"entityTypeId": 2, "id": deal_id, "fields": {"ufCrmDoc": ""}})
    assert portal.files_of(deal_id, "UF_CRM_DOC") == []
    rest(portal, "crm.item.update", {"entityTypeId": 2, "id": deal_id, "fields": {"ufCrmDocs": []}})
    assert portal.files_of(deal_id, "UF_CRM_DOCS") == []
    bad = rest(portal, "crm.item.update", {"entityTypeId": 2, "id": deal_id,
                                           "fields": {"ufCrmDoc": ["x.bin", "not base64!"]}})
    assert bad.status_code == 400 and bad.json()["error"] == "CRM_FIELD_ERROR_VALUE_NOT_VALID"


def test_item_add_with_files(make_portal, rest):
    portal = _portal(make_portal)
    item = rest(portal, "crm.item.add", {"entityTypeId": 2, "fields": {
        "title": "x", "ufCrmDocs": [["a", _b64(b"A")], ["b", _b64(b"B")]]}}).json()["result"]["item"]
    assert [c for _, _, c in portal.files_of(item["id"], "UF_CRM_DOCS")] == [b"A", b"B"]


def test_legacy_update_keep_del_and_replace(make_portal, rest):
    portal = _portal(make_portal)
    deal_id = portal.add_deal({})
    a = portal.add_file_to_deal(deal_id, "UF_CRM_DOCS", "a", b"a")
    b = portal.add_file_to_deal(deal_id, "UF_CRM_DOCS", "b", b"b")
    rest(portal, "crm.deal.update", {"id": deal_id, "fields": {"UF_CRM_DOCS": [
        {"id": a}, {"id": b, "del": "Y"}, {"fileData": ["c", _b64(b"c")]}]}})
    assert [n for _, n, _ in portal.files_of(deal_id, "UF_CRM_DOCS")] == ["a", "c"]
    doc = portal.add_file_to_deal(deal_id, "UF_CRM_DOC", "d", b"d")
    rest(portal, "crm.deal.update", {"id": deal_id, "fields": {"UF_CRM_DOC": {"id": doc}, "TITLE": "kept"}})
    assert portal.files_of(deal_id, "UF_CRM_DOC")[0][0] == doc
    rest(portal, "crm.deal.update", {"id": deal_id, "fields": {"UF_CRM_DOC": {"id": doc, "del": "Y"}}})
    assert portal.files_of(deal_id, "UF_CRM_DOC") == []
    rest(portal, "crm.deal.delete", {"id": deal_id})
    assert portal.state.files == {}


def test_form_encoded_upload_and_batch_update(make_portal, rest):
    portal = _portal(make_portal)
    body = build_query({"fields": {"UF_CRM_DOC": {"fileData": ["f.txt", _b64(b"form")]}}})
    deal_id = requests.post(portal.webhook_url + "crm.deal.add", data=body, timeout=5,
                            headers={"Content-Type": "application/x-www-form-urlencoded"}).json()["result"]
    assert portal.files_of(deal_id, "UF_CRM_DOC")[0][1:] == ("f.txt", b"form")
    cmd = "crm.item.update?" + build_query({"entityTypeId": 2, "id": deal_id,
                                            "fields": {"ufCrmDoc": ["g.txt", _b64(b"batch")]}})
    reply = rest(portal, "batch", {"cmd": {"up": cmd, "bad": "crm.item.get?entityTypeId=2&id=0"}})
    body_ = reply.json()["result"]
    assert body_["result"]["up"]["item"]["ufCrmDoc"]["id"] == portal.files_of(deal_id, "UF_CRM_DOC")[0][0]
    assert body_["result_error"]["bad"]["error"] == "NOT_FOUND"
    assert portal.files_of(deal_id, "UF_CRM_DOC")[0][1:] == ("g.txt", b"batch")
