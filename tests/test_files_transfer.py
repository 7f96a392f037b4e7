"""Files travel with the deal (issue 8): the pure spec/ids/print, and transfers between two emulated
portals over real HTTP (crm.item.get urlMachine -> download -> one crm.deal.update with fileData)."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pydantic
import pytest

from relay import errors
from relay.emulator import EmulatedPortal, default_source_config, default_target_config
from relay.mapping.files import FilesSpec, file_ids, files_print
from relay.portal.client import PortalClient
from relay.portal.pacer import Pacer
from relay.sync.files import Skipped, file_name, limit_text, transfer

SOURCE_SECRET = "src-files-sekret-5e6f"
TARGET_SECRET = "tgt-files-sekret-7a8b"
SPEC = FilesSpec(fields={"UF_CRM_T_DOC": "UF_CRM_DOC", "UF_CRM_T_DOCS": "UF_CRM_DOCS"})
A, B = b"first file\n", bytes(range(256)) * 3  # text and every byte value
SCAN = b"%PDF-1.4 scan"


# --- pure: spec, ids, print --------------------------------------------------------------------


def test_spec_accepts_file_fields_and_refuses_anything_else() -> None:
    spec = FilesSpec.model_validate({"fields": {"UF_CRM_T_DOC": "UF_CRM_1700000001"}, "max_bytes": 1})
    assert spec.fields == {"UF_CRM_T_DOC": "UF_CRM_1700000001"} and spec.max_bytes == 1
    assert FilesSpec().max_bytes == 10 * 1024 * 1024 and FilesSpec().fields == {}
    assert FilesSpec.model_validate({"fields": None}).fields == {}
    for bad in ({"fields": {"TITLE": "UF_CRM_DOC"}}, {"fields": {"UF_CRM_T": "uf_crm_doc"}},
                {"fields": {"UF_CRM_T": "UF_CRM_"}}, {"max_bytes": 0}, {"fields": {}, "extra": 1}):
        with pytest.raises(pydantic.ValidationError):
            FilesSpec.model_validate(bad)
    with pytest.raises(pydantic.ValidationError):
        spec.max_bytes = 5  # type: ignore[misc]  # frozen


def test_file_ids_reads_every_documented_shape() -> None:
    legacy = {"id": 661474, "showUrl": "/bitrix/components/bitrix/crm.deal.show/show_file.php?fileId=661474",
              "downloadUrl": "/bitrix/components/bitrix/crm.deal.show/show_file.php?auth=&fileId=661474"}
    deal = {"UF_CRM_DOC": legacy, "UF_CRM_DOCS": [{"id": "10"}, {"id": 9}, {"id": "10"}]}
    assert file_ids(deal, SPEC) == {"UF_CRM_T_DOC": ["661474"], "UF_CRM_T_DOCS": ["9", "10"]}
    item_shape = {"UF_CRM_DOC": {"id": 30577, "url": "https://x/ajax.php", "urlMachine": "https://x/rest/a?auth=t"}}
    assert file_ids(item_shape, SPEC) == {"UF_CRM_T_DOC": ["30577"]}  # absent source key: left out
    for empty in (None, False, "", []):
        assert file_ids({"UF_CRM_DOC": empty, "UF_CRM_DOCS": empty}, SPEC) == {"UF_CRM_T_DOC": [], "UF_CRM_T_DOCS": []}


def test_file_ids_refuses_a_non_file_value_without_echoing_it() -> None:
    for bad in ("just text", {"urlMachine": "https://x/rest/get?auth=tok-sekret"}, [{"id": "x"}], 17):
        with pytest.raises(errors.MappingError) as info:
            file_ids({"UF_CRM_DOCS": bad}, SPEC)
        assert "UF_CRM_DOCS" in str(info.value) and "sekret" not in str(info.value)


def test_files_print_is_stable_and_empty_without_files() -> None:
    assert files_print({}) == "" and files_print({"UF_CRM_T_DOC": [], "UF_CRM_T_DOCS": []}) == ""
    one = files_print({"UF_CRM_T_DOC": ["5"], "UF_CRM_T_DOCS": ["7", "10"]})
    assert len(one) == 64 and int(one, 16) >= 0
    assert one == files_print({"UF_CRM_T_DOCS": ["10", "7"], "UF_CRM_T_DOC": ["5"], "UF_CRM_X": []})
    assert one != files_print({"UF_CRM_T_DOC": ["5"], "UF_CRM_T_DOCS": ["7"]})
    assert one != files_print({"UF_CRM_T_DOC": ["7", "10"], "UF_CRM_T_DOCS": ["5"]})  # which field matters


def test_file_name_and_limit_text() -> None:
    assert file_name("attachment; filename*=UTF-8''%D1%81%D0%BA%D0%B0%D0%BD.pdf", "1") == "скан.pdf"
    assert file_name("attachment; filename=\"old.pdf\"; filename*=utf-8''new%20one.pdf", "1") == "new one.pdf"
    assert file_name('attachment; filename="a \\"q\\".txt"', "1") == 'a "q".txt'
    assert file_name('attachment; filename="../../etc/passwd"', "1") == "passwd"
    assert file_name("attachment; filename=C:\\temp\\x.doc", "1") == "x.doc"
    assert file_name("", "42") == file_name('attachment; filename=".."', "42") == "file-42"
    assert (limit_text(10 * 1024 * 1024), limit_text(512 * 1024), limit_text(1000)) == ("10 MiB", "512 KiB",
                                                                                           "1000 bytes")


# --- over HTTP ----------------------------------------------------------------------------------


@dataclass
class Pair:
    source: EmulatedPortal
    target: EmulatedPortal
    src: PortalClient
    tgt: PortalClient

    def source_deal(self, **files: list[tuple[str, bytes]]) -> int:
        deal_id = self.source.add_deal({"TITLE": "with files"})
        for field, items in files.items():
            for name, content in items:
                self.source.add_file_to_deal(deal_id, field, name, content)
        return deal_id

    def ids(self, deal_id: int, spec: FilesSpec = SPEC) -> dict[str, list[str]]:
        """What the caller computes: file_ids of the deal as crm.deal.get reads it over HTTP."""
        return file_ids(self.src.call("crm.deal.get", {"id": deal_id}), spec)

    def run(self, deal_id: int, target_id: int, spec: FilesSpec = SPEC) -> tuple[list[str], list[Skipped]]:
        return transfer(self.src, self.tgt, str(deal_id), str(target_id), spec, self.ids(deal_id, spec))

    def held(self, target_id: int, field: str) -> list[tuple[str, bytes]]:
        return [(name, content) for _, name, content in self.target.files_of(target_id, field)]


def _client(name: str, webhook_url: str) -> PortalClient:
    return PortalClient(name, webhook_url, Pacer(rate=1000, burst=1000), attempts=2, backoff=0.01,
                        sleep=lambda _: None)


@pytest.fixture
def pair() -> Iterator[Pair]:
    scfg = default_source_config(enforce_rate=False, secret=SOURCE_SECRET,
                                 uf_fields={"UF_CRM_DOC": "file", "UF_CRM_DOCS": "file"}, uf_multiple=["UF_CRM_DOCS"])
    tcfg = default_target_config(enforce_rate=False, secret=TARGET_SECRET,
                                 uf_fields={"UF_CRM_T_DOC": "file", "UF_CRM_T_DOCS": "file", "UF_CRM_NOTE": "string"},
                                 uf_multiple=["UF_CRM_T_DOCS"])
    with EmulatedPortal(scfg) as source, EmulatedPortal(tcfg) as target:
        yield Pair(source, target, _client("source", source.webhook_url), _client("target", target.webhook_url))


def test_files_arrive_once_with_their_bytes_and_replace_the_old_ones(pair: Pair, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    deal_id = pair.source_deal(UF_CRM_DOCS=[("a.txt", A), ("b.bin", B)], UF_CRM_DOC=[("скан.pdf", SCAN)])
    target_id = pair.target.add_deal({"TITLE": "copy"})
    pair.target.add_file_to_deal(target_id, "UF_CRM_T_DOCS", "old.txt", b"stale")
    pair.target.add_file_to_deal(target_id, "UF_CRM_T_DOC", "old.pdf", b"stale")
    pair.source.reset_log()
    pair.target.reset_log()
    sent, skipped = pair.run(deal_id, target_id)
    assert sorted(sent) == ["a.txt", "b.bin", "скан.pdf"] and skipped == []
    assert pair.held(target_id, "UF_CRM_T_DOCS") == [("a.txt", A), ("b.bin", B)]  # once each, old one gone
    assert pair.held(target_id, "UF_CRM_T_DOC") == [("скан.pdf", SCAN)]
    assert [r.method for r in pair.source.requests] == ["crm.deal.get", "crm.item.get"]  # get: the test's own read
    assert [r.method for r in pair.target.requests] == ["crm.deal.fields", "crm.deal.update"]  # never in batch
    update = pair.target.requests[-1].params["fields"]
    assert set(update["UF_CRM_T_DOC"]) == {"fileData"} and len(update["UF_CRM_T_DOCS"]) == 2  # single vs multiple
    assert pair.src.requests_sent == 5  # deal.get, item.get, three downloads
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "3 file(s) sent" in caplog.text
    assert SOURCE_SECRET not in text and TARGET_SECRET not in text and "token=" not in text


def test_prints_match_after_an_update_that_leaves_the_files_alone(pair: Pair) -> None:
    deal_id = pair.source_deal(UF_CRM_DOCS=[("a.txt", A), ("b.bin", B)])
    target_id = pair.target.add_deal({"TITLE": "copy"})
    before = pair.ids(deal_id)
    pair.run(deal_id, target_id)
    pair.src.call("crm.deal.update", {"id": deal_id, "fields": {"TITLE": "renamed", "COMMENTS": "x"}}, write=True)
    after = pair.ids(deal_id)
    assert after == before and files_print(after) == files_print(before) != ""  # the caller skips the transfer
    listed = pair.src.call("crm.deal.list", {"filter": {"ID": deal_id}, "select": ["ID", "UF_CRM_DOCS"]})
    assert file_ids(listed[0], SPEC) == {"UF_CRM_T_DOCS": after["UF_CRM_T_DOCS"]}
    pair.source.add_file_to_deal(deal_id, "UF_CRM_DOCS", "c.txt", b"c")
    assert files_print(pair.ids(deal_id)) != files_print(before)


def test_a_file_over_the_limit_stays_behind_and_the_other_is_sent(pair: Pair) -> None:
    spec = SPEC.model_copy(update={"max_bytes": 1000})
    deal_id = pair.source_deal(UF_CRM_DOCS=[("small.txt", b"s" * 1000), ("big.bin", b"b" * 1001)],
                               UF_CRM_DOC=[("huge.pdf", b"h" * 5000)])
    target_id = pair.target.add_deal({"TITLE": "copy"})
    pair.target.add_file_to_deal(target_id, "UF_CRM_T_DOC", "kept.pdf", b"kept")
    sent, skipped = pair.run(deal_id, target_id, spec)
    assert sent == ["small.txt"]
    assert skipped == [Skipped("UF_CRM_T_DOC", "huge.pdf", 5000, "over the 1000 bytes limit"),
                       Skipped("UF_CRM_T_DOCS", "big.bin", 1001, "over the 1000 bytes limit")]
    assert pair.held(target_id, "UF_CRM_T_DOCS") == [("small.txt", b"s" * 1000)]
    assert pair.held(target_id, "UF_CRM_T_DOC") == [("kept.pdf", b"kept")]  # every file skipped: untouched


def test_an_emptied_source_field_clears_the_target_without_reading_links(pair: Pair) -> None:
    deal_id = pair.source_deal(UF_CRM_DOCS=[("a.txt", A)], UF_CRM_DOC=[("s.pdf", SCAN)])
    target_id = pair.target.add_deal({"TITLE": "copy"})
    pair.run(deal_id, target_id)
    assert pair.held(target_id, "UF_CRM_T_DOCS") and pair.held(target_id, "UF_CRM_T_DOC")
    pair.src.call("crm.deal.update", {"id": deal_id, "fields": {"UF_CRM_DOCS": [], "UF_CRM_DOC": ""}}, write=True)
    assert files_print(pair.ids(deal_id)) == ""
    pair.source.reset_log()
    assert pair.run(deal_id, target_id) == ([], [])
    assert pair.held(target_id, "UF_CRM_T_DOCS") == [] and pair.held(target_id, "UF_CRM_T_DOC") == []
    assert [r.method for r in pair.source.requests] == ["crm.deal.get"]  # no crm.item.get, no download


def test_a_single_target_field_gets_the_first_file_only(pair: Pair) -> None:
    spec = FilesSpec(fields={"UF_CRM_T_DOC": "UF_CRM_DOCS"})
    deal_id = pair.source_deal(UF_CRM_DOCS=[("one.txt", b"1"), ("two.txt", b"2")])
    target_id = pair.target.add_deal({"TITLE": "copy"})
    sent, skipped = pair.run(deal_id, target_id, spec)
    assert sent == ["one.txt"] and [(s.field, s.reason) for s in skipped] == [
        ("UF_CRM_T_DOC", "the target field holds one file")]
    assert pair.held(target_id, "UF_CRM_T_DOC") == [("one.txt", b"1")]


def test_a_target_field_that_is_missing_or_not_a_file_field_is_refused(pair: Pair) -> None:
    deal_id = pair.source_deal(UF_CRM_DOCS=[("a.txt", A)])
    target_id = pair.target.add_deal({"TITLE": "copy"})
    for field in ("UF_CRM_NOPE", "UF_CRM_NOTE"):
        pair.target.reset_log()
        with pytest.raises(errors.TargetMisconfigured, match=field):
            pair.run(deal_id, target_id, FilesSpec(fields={field: "UF_CRM_DOCS"}))
        assert [r.method for r in pair.target.requests] == ["crm.deal.fields"]


# --- download: the origin rule, the size limit, errors -----------------------------------------


class _Recorder:
    """A local HTTP server that records GETs and answers with ``body`` (optionally without a length)."""

    def __init__(self, body: bytes = b"x", *, length: bool = True) -> None:
        self.paths: list[str] = []
        self.written = 0
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                recorder.paths.append(self.path)
                self.send_response(200)
                if length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for start in range(0, len(body), 65536):
                        self.wfile.write(body[start:start + 65536])
                        recorder.written += len(body[start:start + 65536])
                except OSError:
                    pass  # the client stopped reading

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    rec = _Recorder()
    yield rec
    rec.close()


def _url_machine(pair: Pair, deal_id: int, field: str) -> str:
    item = pair.src.call("crm.item.get", {"entityTypeId": 2, "id": deal_id, "useOriginalUfNames": "Y"})["item"]
    value = item[field]
    return str((value[0] if isinstance(value, list) else value)["urlMachine"])


def test_download_refuses_any_other_host_scheme_or_port(pair: Pair, recorder: _Recorder) -> None:
    deal_id = pair.source_deal(UF_CRM_DOC=[("s.pdf", SCAN)])
    link = _url_machine(pair, deal_id, "UF_CRM_DOC")
    assert pair.src.download(link, 100) == SCAN  # the genuine link works
    port = pair.source.url.rsplit(":", 1)[1]
    tail = link.split(f":{port}", 1)[1]
    foreign = [
        recorder.url + tail,  # another port on the same host
        f"http://localhost:{port}{tail}",  # another host name
        f"https://127.0.0.1:{port}{tail}",  # another scheme
        f"http://127.0.0.1:{port}@127.0.0.1:{recorder.url.rsplit(':', 1)[1]}{tail}",  # user-info trick
        f"http://127.0.0.1:{port}\\@evil.example{tail}",
        link.replace("http://", "ftp://"), "/relative" + tail, "",
    ]
    for url in foreign:
        with pytest.raises(errors.PermanentError) as info:
            pair.src.download(url, 100)
        assert SOURCE_SECRET not in str(info.value) and "token" not in str(info.value), url
    assert recorder.paths == []  # nothing was fetched from the other host


def test_transfer_stops_before_writing_when_a_link_points_elsewhere(pair: Pair, recorder: _Recorder) -> None:
    deal_id = pair.source_deal(UF_CRM_DOCS=[("a.txt", A)])
    target_id = pair.target.add_deal({"TITLE": "copy"})
    pair.source.state.base_url = recorder.url  # the emulator now hands out links to another server
    pair.target.reset_log()
    with pytest.raises(errors.PermanentError):
        pair.run(deal_id, target_id)
    assert recorder.paths == [] and "crm.deal.update" not in [r.method for r in pair.target.requests]


def test_download_stops_reading_after_the_limit() -> None:
    body = os.urandom(1 << 16) * 512  # 32 MiB, sent without Content-Length
    rec = _Recorder(body, length=False)
    try:
        client = _client("big", f"{rec.url}/rest/1/{SOURCE_SECRET}/")
        assert client.download(f"{rec.url}/rest/crm.controller.item.getFile.json?token=t", 1000) is None
        assert rec.written < len(body) // 2  # the client hung up instead of reading it all
        assert client.download(f"{rec.url}/x", len(body)) == body  # the same body under a large enough limit
    finally:
        rec.close()
    announced = _Recorder(b"y" * 5000)
    try:
        client = _client("announced", f"{announced.url}/rest/1/{SOURCE_SECRET}/")
        assert client.download(f"{announced.url}/f", 4999) is None
        assert client.download(f"{announced.url}/f", 5000) == b"y" * 5000
    finally:
        announced.close()


def test_download_errors_are_typed_and_name_no_secret(pair: Pair, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    deal_id = pair.source_deal(UF_CRM_DOC=[("s.pdf", SCAN)])
    link = _url_machine(pair, deal_id, "UF_CRM_DOC")
    forged = link.replace("token=", "token=0")
    with pytest.raises(errors.NotFound) as not_found:
        pair.src.download(forged, 100)
    with pytest.raises(errors.AuthError) as denied:
        pair.src.download(link.replace(SOURCE_SECRET, "wrong-sekret"), 100)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    client = _client("closed", f"{closed}/rest/1/{SOURCE_SECRET}/")
    with pytest.raises(errors.NetworkError) as down:
        client.download(f"{closed}/rest/1/{SOURCE_SECRET}/crm.controller.item.getFile.json?token=abc", 100)
    token = link.split("token=", 1)[1]
    for exc in (not_found.value, denied.value, down.value):
        assert SOURCE_SECRET not in str(exc) and token not in str(exc) and "sekret" not in str(exc)
        assert exc.__cause__ is None
    assert SOURCE_SECRET not in caplog.text and token not in caplog.text
