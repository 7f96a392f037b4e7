"""No intake URL answers 5xx to a malformed body, and none is stored (issue 9, acceptance 4).

A seeded generator builds 10,000 malformed bodies and posts them to the relay's real WSGI app on a real
HTTP port (``relayenv.start``): 4,000 to ``POST /b24/partner`` (with the source's application token,
member id and domain in the body; with ``?key=<robot_key>``; with a wrong token or key; without any)
and 2,000 to each 1C URL (``/api/webhook/1c/clients``, ``invoices``, ``outgoing-invoices``; with
``Authorization: Bearer <token>``, with a wrong or malformed header, without one).  The generators:
random bytes, random text, truncated JSON, JSON nested 1,000–100,000 deep, bracket keys nested
thousands deep, huge numbers, NaN/Infinity, lone surrogates, BOM-prefixed and UTF-16 JSON, wrong
types, missing keys, every content type, gzip, too many values, oversize bodies.

Every body is invalid by construction, in one of two ways:

* its shape alone is refused whatever it says — a strict prefix of a JSON object, nesting deeper than
  ``ingress.max_depth``, a number over 100 characters or out of range, NaN, a lone surrogate, gzip bytes
  (``0x8b`` is never valid UTF-8), more than ``ingress.max_fields`` values, more than
  ``ingress.max_body_bytes`` — so it is built around a *valid* call, which gets the decoder furthest;
* or it is a real-format call with one fatal defect (a deal id that is no positive integer, a
  ``document_id`` that is not three strings, a 1C document without number, a date that is no date,
  an event the relay does not relay...) and the rest of the fuzzing around it.

So: no answer is 5xx; every answer is JSON — a 4xx ``{"ok": false, "error": ...}``, a 2xx only
``{"ok": true, "ignored": ...}``; the jobs table has no row at the end; no log record carries a
traceback.  ``test_unbroken_calls_are_stored`` shows the same calls without their defect *are* stored,
so the refusals come from the defects and not from the set-up.  A 1C URL that answers 404 (its route
is not there yet) is skipped, saying so.  The 10,000 take about 20 s (werkzeug's threaded server
closes every connection, so the session reconnects; about 500 calls/s).

Also here: pure tests of what the fuzzer found in :mod:`relay.intake.bitrix24` (JSON nesting counted
before ``json.loads`` recurses; ``event_token`` values that cannot be stored), and the one finding only
PostgreSQL shows (a NUL in a stored column answered 500 there; SQLite stores it).
"""

from __future__ import annotations

import copy
import gzip
import json
import logging
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from sqlalchemy import func, select

from relay.emulator.sender import FORM
from relay.errors import BadRequest
from relay.intake.bitrix24 import BodyLimits, SourceAuth, decode_body, interpret
from relay.phpquery import build_query
from relay.store import jobs
from tests.relayenv import APP_TOKEN, ROBOT_KEY, RelayEnv, start, stop
from tests.test_ingress_served import check_answer as check_any_answer

e2e = pytest.mark.e2e

SEED = 20261129
#: bodies per intake URL: 10,000 in all
SHARES = {"b24": 4000, "1c-clients": 2000, "1c-invoices": 2000, "1c-outgoing-invoices": 2000}
ONEC_TOKEN = "onec-sekret-token-0123456789"
ONEC_URLS = {"1c-clients": ("/api/webhook/1c/clients", "client"),
             "1c-invoices": ("/api/webhook/1c/invoices", "incoming"),
             "1c-outgoing-invoices": ("/api/webhook/1c/outgoing-invoices", "outgoing")}
ONEC_MAPPING = """\
clients:
  fields:
    TITLE: Наименование
incoming:
  fields:
    TITLE: "Incoming invoice {НомерДокумента}"
    OPPORTUNITY: СуммаДокумента
outgoing:
  target: invoice
  fields:
    TITLE: "Outgoing invoice {НомерДокумента}"
"""
MAX_BODY = 256 * 1024  # ingress.max_body_bytes (default)
JSON = "application/json"
BOUNDARY = "fuzzb0und4ry"
BOM = b"\xef\xbb\xbf"
MARK = '"@@FUZZ@@"'  # a JSON value the generators replace with raw (often invalid) JSON text
CONTENT_TYPES: list[str | None] = [
    None, "", FORM, f"{FORM}; charset=UTF-8", f"{FORM}; charset=windows-1251", JSON, f"{JSON}; charset=utf-8",
    f"{JSON}; charset=cp1251", f'{JSON}; charset="utf-16"', "APPLICATION/JSON", f"{JSON};", "text/plain",
    "text/plain; charset=utf-8", "text/json", "text/html", "text/xml", "application/xml", "application/octet-stream",
    "application/x-json", "application/json5", "application/vnd.api+json", "multipart/form-data",
    f"multipart/form-data; boundary={BOUNDARY}", "multipart/form-data; boundary=",
    'multipart/form-data; boundary="a b"',
    "multipart/form-data; boundary=" + "b" * 200, f"multipart/mixed; boundary={BOUNDARY}", "*/*", ";;", "/",
    "application", "x" * 300, f"{JSON}, text/plain", f"{JSON}; charset=\xe9",
]
ALPHABET = ("abcxyzABCXYZ0123456789 \t\r\n[]{}&=%\"\\:,+-._~?#/;'<>" "абвгдєїґЁё«»ЄІ№"
            "\x00\x01\x1f\x7f\x85\xa0\u2028\u2029\ufeff\ufffd\u00b2\u0667\uff10\U0001f600\U0001d11e")

# --- valid calls and their fatal defects ---------------------------------------------------------------

#: deal ids that are no positive integer in every encoding (no booleans or 12.0: a form makes them "1", "12")
BAD_IDS: list[Any] = ["0", "-5", "abc", "", " ", "07", "1" * 20, "7x", "DEAL_7", "1e3", "+7", "\u0667", "7\x00",
                      "7 8", 12.5, 10**30, -3, [7], {"a": "7"}]
BAD_DOC_IDS = ["DEAL_0", "DEAL_01", "DEAL_-1", "DEAL_", "DEAL_7x", "DEAL_" + "9" * 20, "deal_7", "DEAL_\u0667",
               "DEAL_7 8", "7", "DEAL_7\x00"]
BAD_DATES = ["2024-13-45T10:30:00", "yesterday", "15.01.2024 10:30:00", "2024-01-15T25:61:00", "2024-02-30T00:00:00",
             "2024-01-15T10:30:00.123", "2024-01-15T10:30:00GMT", "2024-01-15T10:30:00+99:99",
             "2024-01-15T10:30:00+24:00", "2024-01-15T10:30:00-25:00", "2024-01-15T10:30:00+\u0660\u0662:\u0660\u0660",
             "\uff12\uff10\uff12\uff14-01-15T10:30:00+02:00"]
BAD_GUIDS = ["not-a-guid", "8a3c2f4e1b2d11ee9f3a005056a1b2c3", "{8a3c2f4e-1b2d-11ee-9f3a-005056a1b2c3}",
             "8a3c2f4e-1b2d-11ee-9f3a-005056a1b2cZ", "0"]
#: a record's identity with a NUL: PostgreSQL cannot store it ("text fields cannot contain NUL (0x00) bytes")
NUL_KEYS = ["0\x001", "\x00", "0000-000123\x00"]
ONEC_TEXT = {"client": ("Код", "Наименование", "ИНН", "Телефон", "Email", "Адрес", "Guid"),
             "incoming": ("СсылкаДокумента", "НомерДокумента", "Постачальник", "ЄДРПОУ", "КодВалюты", "Комментарий"),
             "outgoing": ("СсылкаДокумента", "НомерДокумента", "Клиент", "ЄДРПОУ", "КодВалюты", "Комментарий")}
DATA_KEY = {"client": "clientData", "incoming": "invoiceData", "outgoing": "invoiceData"}

Defect = tuple[str, str, Callable[[dict[str, Any], random.Random], None]]  # (group, name, apply)


def _setter(*path: str | int, values: list[Any]) -> Callable[[dict[str, Any], random.Random], None]:
    def apply(doc: dict[str, Any], rng: random.Random) -> None:
        node: Any = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = copy.deepcopy(rng.choice(values))
    return apply


def _deleter(*paths: tuple[str | int, ...]) -> Callable[[dict[str, Any], random.Random], None]:
    def apply(doc: dict[str, Any], _rng: random.Random) -> None:
        for path in paths:
            node: Any = doc
            for part in path[:-1]:
                node = node[part]
            if isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                del node[path[-1]]
    return apply


def _both(*steps: Callable[[dict[str, Any], random.Random], None]) -> Callable[[dict[str, Any], random.Random], None]:
    def apply(doc: dict[str, Any], rng: random.Random) -> None:
        for step in steps:
            step(doc, rng)
    return apply


EVENT_DEFECTS: list[Defect] = [
    ("wrong types", "deal id", _setter("data", "FIELDS", "ID", values=BAD_IDS)),
    ("wrong types", "event", _setter("event", values=[["ONCRMDEALADD"], 5, {"a": "ONCRMDEALADD"}])),
    ("wrong types", "data", _setter("data", values=["x", ["7405"], 5])),
    ("wrong types", "data[FIELDS]", _setter("data", "FIELDS", values=["7405", ["7405"]])),
    ("missing keys", "no data", _deleter(("data",))),
    ("missing keys", "no data[FIELDS]", _deleter(("data", "FIELDS"))),
    ("missing keys", "no deal id", _deleter(("data", "FIELDS", "ID"))),
    ("missing keys", "empty data[FIELDS]", _setter("data", "FIELDS", values=[{}])),
    ("missing keys", "no event", _deleter(("event",))),
    ("not relayed", "other event", _setter("event", values=["ONCRMLEADADD", "ONCRMCONTACTUPDATE", "ONAPPINSTALL",
                                                             "ONCRMDEALADDED", "ONCRMINVOICEADD"])),
]
ROBOT_DEFECTS: list[Defect] = [
    ("wrong types", "document_id", _setter("document_id", values=[
        "DEAL_7", 5, {"a": "crm", "b": "CCrmDocumentDeal", "c": "DEAL_7"}, ["crm", "CCrmDocumentDeal", ["DEAL_7"]],
        ["crm", ["CCrmDocumentDeal"], "DEAL_7"]])),
    ("wrong values", "document_id[2]", _setter("document_id", 2, values=BAD_DOC_IDS)),
    ("wrong values", "four parts", lambda doc, _rng: doc["document_id"].append("x")),
    ("missing keys", "two parts", _deleter(("document_id", 2))),
    ("missing keys", "no document_id", _deleter(("document_id",))),
    ("wrong types", "event_token", _setter("event_token", values=[["6661bc2f|A1|sig"], {"a": "6661bc2f|A1|sig"}])),
    # stored with the job, one per line: a NUL (PostgreSQL refuses it) or a line break (two tokens) is no token
    ("wrong values", "event_token", _setter("event_token", values=[
        "6661bc2f|A1\x00|sig", "6661bc2f|A1\n|sig", "\x00", "6661bc2f|A1|sig\r", "x\x85y", "x" * 1025])),
    ("not relayed", "other document type", _setter("document_id", 1, values=[
        "CCrmDocumentLead", "CCrmDocumentContact", "Bitrix\\Crm\\Integration\\BizProc\\Document\\Dynamic"])),
]
AUTH_DEFECTS: list[Defect] = [  # only where the body's auth block is the credential (no ?key=)
    ("wrong types", "auth", _setter("auth", values=["x", [APP_TOKEN], {"application_token": [APP_TOKEN]}])),
]


def onec_defects(kind: str) -> list[Defect]:
    """Fatal defects of a 1C call of ``kind`` (the intake refuses each, whatever the rest says)."""
    key, other = DATA_KEY[kind], "invoiceData" if kind == "client" else "clientData"
    no_guid = _deleter((key, "Guid"))
    common: list[Defect] = [
        ("wrong types", "action", _setter("action", values=[5, ["create"], {"a": "create"}, True, None])),
        ("wrong values", "action", _setter("action", values=["", "upsert", "создать", "deleted", "create\x00"])),
        ("missing keys", "no action", _deleter(("action",))),
        ("wrong types", key, _setter(key, values=["{}", ["x"], 5, True, "Код=1"])),
        ("missing keys", f"no {key}", _deleter((key,))),
        ("missing keys", f"{other} instead of {key}",
         lambda doc, _rng: doc.__setitem__(other, doc.pop(key))),
        ("wrong types", "text field", lambda doc, rng: doc[key].__setitem__(
            rng.choice(ONEC_TEXT[kind]), rng.choice([["x"], {"a": 1}, True, False]))),
        ("wrong values", "Guid", _setter(key, "Guid", values=BAD_GUIDS)),
    ]
    if kind == "client":
        return [*common,
                ("missing keys", "no Код nor Guid", _deleter((key, "Код"), (key, "Guid"))),
                ("missing keys", "empty Код, no Guid", _both(no_guid, _setter(key, "Код", values=["", "   ", None]))),
                ("wrong values", "NUL in Код, no Guid", _both(no_guid, _setter(key, "Код", values=NUL_KEYS))),
                ]
    pos = (key, "positions", 0)
    return [*common,
            ("wrong types", "positions", _setter(key, "positions", values=[{"0": {"КодТовара": "15"}}, "Котел", 5,
                                                                          True])),
            ("wrong types", "positions[0]", _setter(*pos, values=["x", [1], 5, None, True])),
            ("wrong types", "date", _setter(key, "ДатаДокумента", values=[20240115, ["2024-01-15"], True, {"y": 1}])),
            ("wrong types", "amount", _setter(key, "СуммаДокумента", values=[{}, [], True, False, {"a": 1}])),
            ("wrong types", "posted", _setter(key, "Проведен", values=[2, [], {}, 1.5])),
            ("wrong types", "position number", lambda doc, rng: doc[key]["positions"][0].__setitem__(
                rng.choice(["Количество", "Цена", "Сумма"]), rng.choice([True, {}, [], "x"]))),
            ("wrong types", "position text", lambda doc, rng: doc[key]["positions"][0].__setitem__(
                rng.choice(["НаименованиеТовара", "КодТовара", "ЕдиницаИзмерения"]), rng.choice([[], {}, True]))),
            ("missing keys", "no number, no Guid", _deleter((key, "НомерДокумента"), (key, "Guid"))),
            ("missing keys", "no date, no Guid", _deleter((key, "ДатаДокумента"), (key, "Guid"))),
            ("missing keys", "empty date, no Guid",
             _both(no_guid, _setter(key, "ДатаДокумента", values=["", None, "0001-01-01T00:00:00"]))),
            ("missing keys", "empty number, no Guid",
             _both(no_guid, _setter(key, "НомерДокумента", values=["", None, "  "]))),
            ("wrong values", "date", lambda doc, rng: doc[key].__setitem__(
                rng.choice(["ДатаДокумента", "ДатаОплаты"]), rng.choice(BAD_DATES))),
            ("wrong values", "amount", _setter(key, "СуммаДокумента", values=[
                "abc", "1 500,50,7", "1.5.5", "∞", "1e5", "--1", "0x10"])),
            ("wrong values", "posted", _setter(key, "Проведен", values=["maybe", "да нет", "2"])),
            ("wrong values", "NUL in number, no Guid", _both(no_guid, _setter(key, "НомерДокумента", values=NUL_KEYS))),
            ]


# --- cases ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    generator: str
    auth: str
    path: str
    headers: dict[str, str]
    body: bytes
    detail: str

    def show(self) -> str:
        return (f"{self.generator} [{self.auth}; {self.detail}] POST {self.path} {self.headers.get('Content-Type')!r} "
                f"{len(self.body)} bytes {self.body[:80]!r}")


class Maker:
    """Valid and broken calls for one intake URL, encoded the way its callers encode them."""

    def __init__(self, url: str, rng: random.Random, member_id: str, domain: str) -> None:
        self.url, self.rng = url, rng
        self.path, self.kind = ONEC_URLS.get(url, ("/b24/partner", "b24"))
        self.member_id, self.domain = member_id, domain
        self.auth_label, self.auth_block, self.case_path, self.headers = "", None, self.path, {}
        self.encoding = "json"

    @property
    def b24(self) -> bool:
        return self.kind == "b24"

    def pick_auth(self) -> None:
        """Choose this case's credentials: in the body, the query or the headers."""
        rng, self.auth_block, self.headers, self.case_path = self.rng, None, {}, self.path
        if self.b24:
            self.auth_label = rng.choices(["token", "key", "wrong token", "wrong key", "none", "unknown source"],
                                          [45, 20, 10, 10, 13, 2])[0]
            if self.auth_label in ("token", "wrong token"):
                token = APP_TOKEN if self.auth_label == "token" else "wrong-sekret-token-0123456789"
                self.auth_block = {"domain": self.domain, "client_endpoint": f"https://{self.domain}/rest/",
                                   "server_endpoint": "https://oauth.bitrix.info/rest/",
                                   "member_id": self.member_id, "application_token": token}
            elif self.auth_label == "key":
                self.case_path += f"?key={ROBOT_KEY}"
            elif self.auth_label == "wrong key":
                self.case_path += rng.choice(["?key=", "?key=wrong-key-0123456789", "?key=%FF%FE",
                                              f"?key={ROBOT_KEY}x", f"?key={ROBOT_KEY[:-1]}", "?key=%00"])
            elif self.auth_label == "unknown source":
                self.case_path = rng.choice(["/b24/nobody", "/b24/" + "p" * 300, "/b24/partner%00", "/b24/%FF"])
            return
        self.auth_label = rng.choices(["token", "wrong token", "malformed", "none"], [60, 12, 10, 18])[0]
        if self.auth_label == "token":
            self.headers["Authorization"] = rng.choice(["Bearer ", "bearer ", "BEARER  "]) + ONEC_TOKEN
        elif self.auth_label == "wrong token":
            self.headers["Authorization"] = "Bearer " + rng.choice(["wrong-sekret-token-0123456789",
                                                                     ONEC_TOKEN[:-1], ONEC_TOKEN + "x", "\xe9" * 20])
        elif self.auth_label == "malformed":
            self.headers["Authorization"] = rng.choice(["Bearer", "Bearer ", "Basic b25lYzpzZWtyZXQ=",
                                                        "Token " + ONEC_TOKEN, ONEC_TOKEN, "Bearer\t" + ONEC_TOKEN])

    def valid(self) -> dict[str, Any]:
        """A call that would be stored (with this case's credentials)."""
        rng = self.rng
        if self.b24:
            deal = rng.randint(1, 10**6)
            shape = rng.choice(["event", "robot", "app robot"])
            if shape == "event":
                doc: dict[str, Any] = {"event": rng.choice(["ONCRMDEALUPDATE", "ONCRMDEALADD"]),
                                       "event_handler_id": "3", "data": {"FIELDS": {"ID": str(deal)}},
                                       "ts": "1732000000"}
            else:
                doc = {"document_id": ["crm", "CCrmDocumentDeal", f"DEAL_{deal}"]}
                if shape == "app robot":
                    doc.update({"code": "relay_deal", "event_token": "6661bc2fd8a0e7.26405435|A1_2_3_4|sig.abc",
                                "workflow_id": "6661bc2fd8a0e7.26405435", "properties": {"note": "Котёл"},
                                "document_type": ["crm", "CCrmDocumentDeal", "DEAL"], "ts": "1732000000"})
            if self.auth_block is not None:
                doc["auth"] = dict(self.auth_block)
            return doc
        key = DATA_KEY[self.kind]
        if self.kind == "client":
            data: dict[str, Any] = {"Код": f"{rng.randint(1, 99999):05d}", "Наименование": "ТОВ «Ромашка»",
                                    "ИНН": "1234567890", "Телефон": "+380 44 123-45-67", "Email": "info@romashka.ua",
                                    "Адрес": "Київ, вул. Хрещатик, 1"}
        else:
            who = "Постачальник" if self.kind == "incoming" else "Клиент"
            data = {"СсылкаДокумента": "Поступление товаров и услуг 0000-000123 от 15.01.2024 10:30:00",
                    "НомерДокумента": f"0000-{rng.randint(1, 999999):06d}", "ДатаДокумента": "2024-01-15T10:30:00",
                    "ДатаОплаты": "0001-01-01T00:00:00", who: "ТОВ «Постач»", "ЄДРПОУ": "12345678",
                    "КодВалюты": "980", "СуммаДокумента": 1500.5, "Проведен": True, "Комментарий": "",
                    "positions": [{"НаименованиеТовара": "Котел X200", "КодТовара": "15", "ЕдиницаИзмерения": "шт",
                                   "Количество": 1, "Цена": 1200, "Сумма": 1200},
                                  {"НаименованиеТовара": "Монтаж", "КодТовара": "", "ЕдиницаИзмерения": "послуга",
                                   "Количество": 2, "Цена": 150.25, "Сумма": 300.5}]}
        if rng.random() < 0.5:
            data["Guid"] = str(uuid.UUID(int=rng.getrandbits(128)))
        return {"action": rng.choice(["create", "update", "delete"]), key: data}

    def broken(self, groups: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
        """A valid call with one fatal defect (of one of ``groups``, any when empty), and the defect's name."""
        doc = self.valid()
        if self.b24:
            defects = EVENT_DEFECTS if "event" in doc else ROBOT_DEFECTS
            if self.auth_block is not None:
                defects = defects + AUTH_DEFECTS
        else:
            defects = onec_defects(self.kind)
        group, name, apply = self.rng.choice([d for d in defects if not groups or d[0] in groups])
        apply(doc, self.rng)
        return doc, f"{group}: {name}"

    # encodings

    def pick_encoding(self) -> str:
        self.encoding = (self.rng.choices(["form", "json", "json flat", "multipart"], [40, 30, 15, 15])[0]
                         if self.b24 else "json")
        return self.encoding

    def json_text(self, doc: Any) -> str:
        rng = self.rng
        if self.b24:
            return json.dumps(doc, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, None, 2]))
        return json.dumps(doc, ensure_ascii=False, indent=rng.choice([None, "\t", "\t"]))  # ЗаписатьJSON: tabs

    def finish(self, text: str) -> bytes:
        """JSON text as its caller sends it: 1C modules often with a BOM."""
        body = text.encode("utf-8", "surrogatepass")
        return BOM + body if not self.b24 and self.rng.random() < 0.4 else body

    def natural_type(self) -> str | None:
        rng = self.rng
        if not self.b24:
            return rng.choice([JSON, f"{JSON}; charset=utf-8", "text/plain", None])
        return {"form": rng.choice([FORM, FORM, "", None, "text/plain", f"{FORM}; charset=UTF-8"]),
                "json": rng.choice([JSON, JSON, f"{JSON}; charset=utf-8", FORM, None]),
                "json flat": rng.choice([JSON, FORM]),
                "multipart": f"multipart/form-data; boundary={BOUNDARY}"}[self.encoding]

    def encode(self, doc: dict[str, Any], extra: Sequence[tuple[str, str]] = ()) -> bytes:
        """``doc`` in this case's encoding, plus ``extra`` fields written as they are (raw bracket keys)."""
        if self.encoding == "json":
            return self.finish(self.json_text({**doc, **dict(extra)}))
        if self.encoding == "json flat":
            return self.finish(json.dumps(dict([*flat_pairs(doc), *extra])))
        if self.encoding == "form":
            return (build_query(doc) + "".join(f"&{k}={v}" for k, v in extra)).encode()
        return multipart([*parse_qsl(build_query(doc), keep_blank_values=True), *extra])


def flat_pairs(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """PHP bracket keys with JSON scalar values: ``{"a": {"b": [1]}}`` -> ``[("a[b][0]", 1)]``."""
    if isinstance(value, (dict, list)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        return [p for k, v in items for p in flat_pairs(v, f"{prefix}[{k}]" if prefix else str(k))]
    return [(prefix, value)]


def multipart(pairs: list[tuple[str, str]], boundary: str = BOUNDARY) -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode()
             + b"\r\n" for name, value in pairs]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def place(doc: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """``doc`` with :data:`MARK` put in place of one of its values, or next to them."""
    doc = copy.deepcopy(doc)
    containers: list[Any] = []
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        containers.append(node)
        stack.extend(v for v in (node.values() if isinstance(node, dict) else node) if isinstance(v, (dict, list)))
    node = rng.choice(containers)
    marker = json.loads(MARK)
    if isinstance(node, dict):
        node[rng.choice([*node, "x"]) if node else "x"] = marker
    elif node and rng.random() < 0.5:
        node[rng.randrange(len(node))] = marker
    else:
        node.append(marker)
    return doc


# --- generators: (maker) -> (body, content type, extra headers, detail) --------------------------------

Made = tuple[bytes, str | None, dict[str, str], str]


def gen_random_bytes(m: Maker) -> Made:
    body = m.rng.randbytes(m.rng.choice([1, 2, 16, 256, 4096, 65536]))
    return body, m.rng.choice(CONTENT_TYPES), {}, "random"


def gen_random_text(m: Maker) -> Made:
    rng = m.rng
    text = rng.choice(["", "{", "[", "a[", "\ufeff{"]) + "".join(rng.choice(ALPHABET) for _ in range(
        rng.choice([1, 10, 100, 3000])))
    return text.encode("utf-8"), rng.choice(CONTENT_TYPES), {}, "random"


def gen_truncated_json(m: Maker) -> Made:
    """A strict prefix of a valid call's JSON text: never a JSON object (cut in characters or in bytes)."""
    m.encoding = "json"
    text = m.json_text(m.valid())
    cut = m.rng.randrange(len(text))
    if m.rng.random() < 0.5:
        body = m.finish(text[:cut])
    else:
        raw = text.encode()
        body = (BOM if not m.b24 and m.rng.random() < 0.4 else b"") + raw[:m.rng.randrange(len(raw))]
    return body, m.natural_type(), {}, f"cut at {cut} of {len(text)}"


def gen_deep_json(m: Maker) -> Made:
    """A valid call with a value nested 1,000-100,000 deep (arrays, objects, both; closed or not)."""
    rng = m.rng
    depth = rng.choice([1000, 1001, 2000, 3000, 5000, 10_000, 50_000, 100_000])
    style = rng.choice(["arrays", "objects", "mixed", "unclosed arrays", "bracket-key objects"])
    opener, closer = {"arrays": ("[", "]"), "objects": ('{"a":', "}"), "mixed": ('[{"a":', "}]"),
                      "unclosed arrays": ("[", ""), "bracket-key objects": ('{"a[b][c]":', "}")}[style]
    nested = opener * depth + "1" + closer * depth
    m.encoding = "json"
    text = nested if rng.random() < 0.2 else m.json_text(place(m.valid(), rng)).replace(MARK, nested, 1)
    return m.finish(text), m.natural_type(), {}, f"{style} {depth} deep"


def gen_deep_bracket_keys(m: Maker) -> Made:
    """A broken call with bracket keys ``a[b][c]...`` nested thousands deep (kept as flat keys)."""
    rng = m.rng
    doc, defect = m.broken()
    extra = []
    for _ in range(rng.choice([1, 2, 5])):
        depth = rng.choice([17, 100, 1000, 5000, 20_000])
        part = rng.choice(["[b]", "[c]", "[0]", "[]", "[x]", "[b][]"] + (["%5Bb%5D"] if m.encoding == "form" else []))
        root = rng.choice(["a", "x", "auth", "properties", "", "data]"])
        extra.append((root + part * depth, "1"))
    if not m.b24:
        text = m.json_text(doc)
        keys = ", ".join(f"{json.dumps(k)}: 1" for k, _ in extra)
        return m.finish(text.replace("{", "{" + keys + ", ", 1)), m.natural_type(), {}, defect
    return m.encode(doc, extra), m.natural_type(), {}, defect


HUGE = ["1e999999", "-1e999999", "1" + "0" * 5000, "-" + "9" * 4301, "1." + "5" * 500, "9" * 101, "1e400",
        "123456789012345678901234567890e99999", "-1e309"]


def gen_huge_numbers(m: Maker) -> Made:
    """Numbers no decoder should take: over 100 characters or out of range (10**5000, 1e999999...)."""
    rng = m.rng
    number = rng.choice(HUGE)
    mode = rng.choice(["json", "json", "text"])
    if mode == "text" and m.kind in ("incoming", "outgoing"):
        # a 1C module that sends amounts as text ("1500.50"): a 400-digit amount is no amount either
        doc = m.valid()
        digits = rng.choice(["9" * 400, "1" + "0" * 5000, "1" * 310 + ",5"])
        target = doc[DATA_KEY[m.kind]]
        if rng.random() < 0.5:
            target["СуммаДокумента"] = digits
        else:
            target["positions"][0][rng.choice(["Количество", "Цена", "Сумма"])] = digits
        m.encoding = "json"
        return m.finish(m.json_text(doc)), m.natural_type(), {}, f"amount as text, {len(digits)} digits"
    if mode == "text" and m.b24:  # as a form value: just text, so the call is a broken one
        doc, defect = m.broken()
        return m.encode(doc, [("x", number), ("y[z]", number)]), m.natural_type(), {}, defect
    m.encoding = "json"
    text = m.json_text(place(m.valid(), rng)).replace(MARK, number, 1)
    return m.finish(text), m.natural_type(), {}, f"number {number[:12]}... ({len(number)} chars)"


def gen_nan_infinity(m: Maker) -> Made:
    m.encoding = "json"
    token = m.rng.choice(["NaN", "Infinity", "-Infinity", "[NaN]", '{"a": Infinity}'])
    text = m.json_text(place(m.valid(), m.rng)).replace(MARK, token, 1)
    return m.finish(text), m.natural_type(), {}, token


def gen_lone_surrogates(m: Maker) -> Made:
    rng = m.rng
    mode = rng.choice(["escaped", "escaped key", "raw bytes", "percent", "utf-16"])
    lone = rng.choice(["\\ud800", "\\udfff", "x\\udc00y", "\\ud83d\\ude00\\ud800", "\\udbff"])
    m.encoding = "json"
    if mode == "escaped":
        text = m.json_text(place(m.valid(), rng)).replace(MARK, f'"{lone}"', 1)
        return m.finish(text), m.natural_type(), {}, f"value {lone}"
    if mode == "escaped key":
        text = m.json_text(m.valid())
        return m.finish(text.replace("{", '{"' + lone + '": 1, ', 1)), m.natural_type(), {}, f"key {lone}"
    if mode == "raw bytes":
        raw = m.json_text(place(m.valid(), rng)).encode().replace(MARK.encode(), b'"\xed\xa0\x80"', 1)
        return raw, m.natural_type(), {}, "raw UTF-8 surrogate bytes"
    if mode == "utf-16":
        text = m.json_text(place(m.valid(), rng)).replace(MARK, '"\ud800"', 1)
        codec = rng.choice(["utf-16", "utf-16-le", "utf-16-be"])
        body = text.encode(codec, "surrogatepass")
        if codec != "utf-16":
            body = (b"\xff\xfe" if codec.endswith("le") else b"\xfe\xff") + body
        return body, m.natural_type(), {}, f"{codec} with a lone surrogate"
    doc, defect = m.broken()  # percent-encoded in a form: the codec makes it U+FFFD, so the call is a broken one
    m.pick_encoding()
    if m.b24:
        return m.encode(doc, [("x", "%ED%A0%80"), ("a%ED%A0%80", "1")]), m.natural_type(), {}, defect
    text = m.json_text(doc).replace("{", '{"x": "\\ud800", ', 1)
    return m.finish(text), m.natural_type(), {}, defect


def gen_bom(m: Maker) -> Made:
    """A broken call with a byte order mark (1C accepts the BOM, so the call itself must be broken)."""
    rng = m.rng
    doc, defect = m.broken()
    if m.b24 and m.encoding in ("form", "multipart") and rng.random() < 0.5:
        return BOM + m.encode(doc), m.natural_type(), {}, defect
    m.encoding = "json"
    text = m.json_text(doc)
    how = rng.choice(["utf-8", "utf-8 twice", "utf-8 after spaces", "utf-16", "utf-16-be"])
    body = {"utf-8": BOM + text.encode(), "utf-8 twice": BOM + BOM + text.encode(),
            "utf-8 after spaces": b"  " + BOM + text.encode(), "utf-16": text.encode("utf-16"),
            "utf-16-be": b"\xfe\xff" + text.encode("utf-16-be")}[how]
    return body, m.natural_type(), {}, f"{defect}, {how} BOM"


def gen_wrong_types(m: Maker) -> Made:
    doc, defect = m.broken(("wrong types",))
    return m.encode(doc), m.natural_type(), {}, defect


def gen_missing_keys(m: Maker) -> Made:
    doc, defect = m.broken(("missing keys",))
    return m.encode(doc), m.natural_type(), {}, defect


def gen_content_types(m: Maker) -> Made:
    """A broken call under every content type (and cp1251 text with the charset that says so)."""
    rng = m.rng
    doc, defect = m.broken()
    ctype = rng.choice(CONTENT_TYPES)
    if ctype and "1251" in ctype:
        text = m.json_text(doc) if m.encoding.startswith("json") or not m.b24 else build_query(doc)
        return text.encode("cp1251", "replace"), ctype, {}, defect + ", cp1251"
    return m.encode(doc), ctype, {}, defect


def gen_gzip(m: Maker) -> Made:
    """A valid call, gzipped (the relay does not inflate: gzip's second byte 0x8b is never UTF-8); or a
    broken call that only claims to be gzipped."""
    rng = m.rng
    encoding = rng.choice(["gzip", "gzip", "x-gzip", "deflate", "br", "gzip, identity"])
    if rng.random() < 0.3:
        doc, defect = m.broken()
        return m.encode(doc), m.natural_type(), {"Content-Encoding": encoding}, f"{defect}, not compressed"
    body = gzip.compress(m.encode(m.valid()), mtime=0)
    return body, m.natural_type(), {"Content-Encoding": encoding}, f"gzip, said {encoding!r}"


def gen_too_many_values(m: Maker) -> Made:
    """A valid call with more than ingress.max_fields (1,000) fields or JSON values."""
    rng = m.rng
    n = rng.choice([1000, 1001, 5000, 40_000])
    doc = m.valid()
    if m.encoding in ("form", "multipart") and m.b24:
        unit = rng.choice(["a[]", "a[b][]", "a[][b]", "z"])
        return m.encode(doc, [(unit, "x")] * n), m.natural_type(), {}, f"{n} x {unit}"
    m.encoding = "json"
    if not m.b24 and rng.random() < 0.5:  # an invoice of many positions: 6 values each
        rows = doc.get("invoiceData", doc.get("clientData"))
        rows["positions"] = [{"КодТовара": str(i), "Количество": 1} for i in range(n // 2)]
    else:
        doc = {**doc, "x": list(range(n))}
    return m.finish(m.json_text(doc)), m.natural_type(), {}, f"{n} values"


def gen_oversize(m: Maker) -> Made:
    """A valid call padded past ingress.max_body_bytes."""
    rng = m.rng
    size = rng.choice([MAX_BODY + 1, MAX_BODY + 4096, 400_000, 1 << 20])
    m.encoding = rng.choice(["json", "form"]) if m.b24 else "json"
    body = m.encode(place(m.valid(), rng)) if m.encoding == "form" else m.finish(m.json_text(place(m.valid(), rng)))
    mark = b"%40%40FUZZ%40%40" if m.encoding == "form" else MARK.encode()
    pad = size - len(body) + len(mark) - 2
    filler = b'"' + b"x" * pad + b'"' if m.encoding == "json" else b"x" * (pad + 2)
    return body.replace(mark, filler, 1), m.natural_type(), {}, f"{size} bytes"


GENERATORS: dict[str, tuple[Callable[[Maker], Made], int]] = {
    "random bytes": (gen_random_bytes, 7), "random text": (gen_random_text, 7),
    "truncated JSON": (gen_truncated_json, 7), "deep JSON": (gen_deep_json, 7),
    "deep bracket keys": (gen_deep_bracket_keys, 7), "huge numbers": (gen_huge_numbers, 7),
    "NaN/Infinity": (gen_nan_infinity, 6), "lone surrogates": (gen_lone_surrogates, 7), "BOM": (gen_bom, 6),
    "wrong types": (gen_wrong_types, 9), "missing keys": (gen_missing_keys, 8),
    "content types": (gen_content_types, 9), "gzip": (gen_gzip, 5), "too many values": (gen_too_many_values, 5),
    "oversize": (gen_oversize, 3),
}


def fuzz_cases(url: str, count: int, member_id: str, domain: str) -> Iterator[Case]:
    """``count`` malformed calls to one intake URL; the same ones on every run (seeded per URL)."""
    rng = random.Random(f"{SEED}:{url}")
    maker = Maker(url, rng, member_id, domain)
    names = list(GENERATORS)
    weights = [GENERATORS[n][1] for n in names]
    for _ in range(count):
        name = rng.choices(names, weights)[0]
        maker.pick_auth()
        maker.pick_encoding()
        body, ctype, headers, detail = GENERATORS[name][0](maker)
        if rng.random() < 0.15 and name != "content types":
            ctype = rng.choice(CONTENT_TYPES)
        headers = {**maker.headers, **headers, **({} if ctype is None else {"Content-Type": ctype})}
        yield Case(name, maker.auth_label, maker.case_path, headers, body, detail)


def check_answer(reply: requests.Response) -> str | None:
    """What is wrong with an answer to a malformed call, or None: well-formed as any answer
    (:func:`tests.test_ingress_served.check_answer`), and never a 2xx that stored something."""
    problem = check_any_answer(reply)
    if problem is not None or reply.status_code != 200:
        return problem
    answer = reply.json()
    return None if "ignored" in answer and "job_id" not in answer else "stored or answered 2xx although malformed"


# --- what the fuzzer found in relay.intake.bitrix24, pure --------------------------------------------


@pytest.mark.parametrize("opener", ["[", '{"a": ', '[{"a": ', '{"a[b]": '])
@pytest.mark.parametrize("depth", [18, 1000, 5000, 100_000])
def test_deep_json_never_reaches_the_json_decoder(opener: str, depth: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C decoder recurses once per level: RecursionError, or a crashed process on a small thread stack
    (Python 3.13).  Nesting is counted in the text first, so json.loads never sees more than max_depth + 1."""
    def decoder(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("json.loads got a body nested deeper than ingress.max_depth")

    monkeypatch.setattr("relay.intake.bitrix24.json.loads", decoder)
    closer = {"[": "]"}.get(opener, "]" * opener.count("[") + "}" * opener.count("{"))
    for text in (opener * depth + "1" + closer * depth, opener * depth, '{"x": ' + opener * depth):
        with pytest.raises(BadRequest, match=r"JSON nests deeper than 16 levels \(ingress.max_depth\)"):
            decode_body(text.encode(), JSON, BodyLimits(max_fields=200_000))


def test_nesting_is_counted_outside_strings_and_like_bracket_keys() -> None:
    limits = BodyLimits(max_fields=1000, max_depth=16)
    # a string ending in an escaped backslash, one holding an escaped quote and brackets, 17 levels in all
    ok = r'{"s": "' + "[" * 100 + r'\\", "t": "\"[{", "x": ' + "[" * 16 + "]" * 16 + "}"
    decoded = decode_body(ok.encode(), JSON, limits)
    assert decoded["s"] == "[" * 100 + "\\" and decoded["t"] == '"[{'
    with pytest.raises(BadRequest, match="deeper than 16"):
        decode_body(ok.replace("[" * 16 + "]" * 16, "[" * 17 + "]" * 17).encode(), JSON, limits)
    with pytest.raises(BadRequest, match="too many JSON values: more than 1000"):
        decode_body(("[" + "[]," * 1000 + "[]]").encode(), JSON, limits)
    for garbage in ('{"a": 1}' + "[" * 5000, "]" * 5000 + "[" * 5000, '{"a": "' + "[" * 5000):
        with pytest.raises(BadRequest, match="not valid JSON"):  # json.loads stops before the brackets
            decode_body(garbage.encode(), JSON, limits)


def test_deep_json_on_a_small_thread_stack() -> None:
    """What a gunicorn thread of 256 KiB stack gets (Python 3.13 crashed there with a segfault)."""
    code = ("import threading\nfrom relay.intake.bitrix24 import decode_body\nfrom relay.errors import BadRequest\n"
            "def run():\n    for n in (1000, 5000, 100000):\n        try:\n"
            "            decode_body((chr(91) * n).encode(), 'application/json')\n        except BadRequest:\n"
            "            print('refused')\n"
            "threading.stack_size(256 * 1024)\nt = threading.Thread(target=run)\nt.start()\nt.join()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and done.stdout.split() == ["refused"] * 3, (done.returncode, done.stderr[-2000:])


@pytest.mark.parametrize("token", ["6661bc2f|A1\x00|sig", "6661bc2f|A1\n|sig", "\x00", "x\x85y", "x" * 1025,
                                   ["6661bc2f|A1|sig"], {"a": "x"}, 1.5])
def test_event_tokens_that_cannot_be_stored_are_400(token: Any) -> None:
    """An event_token is stored with the job (one per line when calls merge): a NUL made PostgreSQL answer
    500, a line break split it in two; a list or an object was dropped silently."""
    robot = {"document_id": ["crm", "CCrmDocumentDeal", "DEAL_5"], "event_token": token}
    with pytest.raises(BadRequest, match="event_token must be"):
        interpret(robot, "robot-key-123456", SourceAuth(robot_key="robot-key-123456"))
    assert interpret({**robot, "event_token": "6661bc2fd8a0e7.26405435|A1_2_3_4|sig.abc"}, "robot-key-123456",
                     SourceAuth(robot_key="robot-key-123456")).event_token == "6661bc2fd8a0e7.26405435|A1_2_3_4|sig.abc"


# --- the relay ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayEnv]:
    """The relay on a real port with the partner source and a 1C base (token, mapping of all three kinds)."""
    with relay(tmp_path_factory.mktemp("fuzz")) as env:
        yield env


@contextmanager
def relay(tmp: Path, database_url: str | None = None) -> Iterator[RelayEnv]:
    (tmp / "mappings").mkdir(parents=True, exist_ok=True)
    (tmp / "mappings/onec.yaml").write_text(ONEC_MAPPING, encoding="utf-8")
    # the 1C URLs get the Bitrix24 handler's limits here, so one set of "too many values" / "oversize"
    # generators goes past both (their defaults are larger: an invoice may have many positions)
    limits = f"ingress: {{onec_max_fields: 1000, onec_max_body_bytes: {MAX_BODY}}}\n"
    env = start(tmp, extra=f"onec:\n  - id: erp\n    token: {ONEC_TOKEN}\n    mapping: mappings/onec.yaml\n" + limits,
                database_url=database_url)
    try:
        yield env
    finally:
        stop(env)


def job_count(env: RelayEnv) -> int:
    with env.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(jobs)).scalar_one())


def post(session: requests.Session, env: RelayEnv, case: Case) -> requests.Response:
    return session.post(env.url + case.path, data=case.body, headers=case.headers, timeout=30)


@e2e
@pytest.mark.parametrize("url", list(SHARES))
def test_fuzzed_bodies_get_no_5xx_and_nothing_is_stored(fuzz_env: RelayEnv, url: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    env = fuzz_env
    cfg = env.source.config
    statuses: Counter[tuple[str, int]] = Counter()
    problems: Counter[str] = Counter()
    examples: list[str] = []
    began = time.perf_counter()
    with requests.Session() as session:  # the dev server closes each connection; the session reconnects
        for case in fuzz_cases(url, SHARES[url], cfg.member_id, cfg.domain):
            try:
                reply = post(session, env, case)
            except requests.RequestException as exc:
                problems[case.generator] += 1
                examples.append(f"{case.show()}: {type(exc).__name__}")
                continue
            statuses[(case.generator, reply.status_code)] += 1
            wrong = check_answer(reply)
            if wrong:
                problems[case.generator] += 1
                if len(examples) < 20:
                    examples.append(f"{case.show()}: {wrong}: {reply.status_code} {reply.text[:200]!r}")
    took = time.perf_counter() - began
    by_generator: dict[str, dict[int, int]] = {}
    for (gen, status), n in sorted(statuses.items()):
        by_generator.setdefault(gen, {})[status] = n
    print(f"\n{SHARES[url]} fuzzed bodies to {url} in {took:.1f} s ({SHARES[url] / took:.0f}/s):")
    for gen, counts in by_generator.items():
        print(f"  {gen:18} {counts}")
    assert not problems, (f"{sum(problems.values())} bad answers of {SHARES[url]} by generator {dict(problems)}:\n"
                          + "\n".join(examples))
    assert job_count(env) == 0, "a malformed call was stored"
    tracebacks = [f"{r.name}: {r.getMessage()[:200]}" for r in caplog.records
                  if r.exc_info or r.levelno >= logging.ERROR]
    assert not tracebacks, tracebacks[:5]


@e2e
def test_unbroken_calls_are_stored(tmp_path: Path) -> None:
    """The fuzzer's calls without their defects, with the same credentials: stored (so the refusals above
    come from the defects and the hostile shapes, not from the set-up)."""
    with relay(tmp_path) as env:
        cfg = env.source.config
        stored = 0
        for url in SHARES:
            maker = Maker(url, random.Random(f"{SEED}:control:{url}"), cfg.member_id, cfg.domain)
            for _ in range(30):
                maker.pick_auth()
                if maker.auth_label not in ("token", "key"):
                    continue
                maker.pick_encoding()
                body = maker.encode(maker.valid())
                headers = {**maker.headers, **({} if (c := maker.natural_type()) is None else {"Content-Type": c})}
                reply = requests.post(env.url + maker.case_path, data=body, headers=headers, timeout=10)
                assert reply.status_code == 200 and "job_id" in reply.json(), (url, maker.encoding, body[:300],
                                                                               reply.text)
                stored += 1
        assert job_count(env) > 0 and stored >= 30


@e2e
def test_nul_characters_never_reach_postgresql(postgres_url: str, tmp_path: Path) -> None:
    """PostgreSQL refuses a NUL in text ("text fields cannot contain NUL (0x00) bytes"), SQLite stores it: a
    call that would store one in a column (event_token, a 1C record's key) is a 400 on both, never a 500."""
    robot = {"document_id[0]": "crm", "document_id[1]": "CCrmDocumentDeal", "document_id[2]": "DEAL_5"}
    bearer = {"Authorization": f"Bearer {ONEC_TOKEN}"}
    invoice = {"НомерДокумента": "0000-000123\x00", "ДатаДокумента": "2024-01-15T10:30:00"}
    calls: list[tuple[str, str, dict[str, str], bytes]] = [
        ("b24", f"/b24/partner?key={ROBOT_KEY}", {"Content-Type": FORM},
         build_query({**robot, "event_token": "6661bc2f|A1\x00|sig"}).encode()),
        ("b24", f"/b24/partner?key={ROBOT_KEY}", {"Content-Type": JSON},
         json.dumps({"document_id": ["crm", "CCrmDocumentDeal", "DEAL_6"], "event_token": "\x00"}).encode()),
        ("1c-clients", ONEC_URLS["1c-clients"][0], bearer,
         json.dumps({"action": "create", "clientData": {"Код": "0\x001", "Наименование": "X"}}).encode()),
        ("1c-invoices", ONEC_URLS["1c-invoices"][0], bearer,
         json.dumps({"action": "update", "invoiceData": invoice}).encode()),
        ("1c-outgoing-invoices", ONEC_URLS["1c-outgoing-invoices"][0], bearer,
         json.dumps({"action": "update", "invoiceData": invoice}).encode()),
    ]
    with relay(tmp_path, postgres_url) as env:
        answers = {}
        for url, path, headers, body in calls:
            reply = requests.post(env.url + path, data=body, headers=headers, timeout=10)
            answers[f"{url} {body[:60]!r}"] = f"{reply.status_code} {reply.text[:120]}"
        wrong = [f"{call}: {answer}" for call, answer in answers.items() if not answer.startswith("400 ")]
        assert not wrong, "\n".join(wrong)
        assert job_count(env) == 0
