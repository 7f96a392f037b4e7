"""Ingress benchmark: how fast do ``POST /b24/<source_id>`` (Bitrix24 events) and ``POST
/api/webhook/1c/outgoing-invoices`` (1C calls) store what they are sent, and is any call lost?

Not part of the test suite.  Run from the repository root::

    .venv/bin/python bench/ingress.py                      # both modes, both endpoints; relay, relay-no-db, trivial
    .venv/bin/python bench/ingress.py --mode both --no-baseline --no-nodb     # the relay alone (~1 min)
    .venv/bin/python bench/ingress.py --endpoint 1c --mode max --workers 4 --threads 8
    .venv/bin/python bench/ingress.py --mode rate --rate 300 --duration 10 --no-baseline --no-nodb

``apt-get install wrk`` makes the max mode use wrk (less CPU than the Python client), for both endpoints.

Method
------
1. A temporary directory gets a ``relay.yaml`` (one target; one source ``partner`` with an
   ``application_token`` and a ``robot_key``; one 1C base ``main`` with a ``token``, time zone
   Europe/Kyiv; webhook URLs point at 127.0.0.1 ports where nothing listens, since only ingress is
   measured and no queue worker runs), copies of ``config/mappings/partner.yaml`` and
   ``config/mappings/1c.example.yaml`` (as ``mappings/1c.yaml``) and a SQLite database (created with
   :class:`relay.store.Store`, so the PRAGMAs are the relay's own: WAL, ``synchronous=FULL``,
   ``BEGIN IMMEDIATE``).
2. The relay runs under **gunicorn** exactly as deployed (``gunicorn --worker-class gthread
   --threads T --workers W wsgi:app``, cwd = repository root, ``RELAY_CONFIG``,
   ``RELAY_DATABASE_URL``, ``RELAY_LOG_LEVEL=WARNING``).  The benchmark waits for ``GET /healthz``
   = 200 and for every gunicorn worker process; then, for each endpoint (``--endpoint b24|1c|both``,
   the Bitrix24 handler first), it warms the workers up with a few hundred POSTs (on their own ids,
   excluded from the checks) and runs the modes of step 4.  Both endpoints are measured against the
   same gunicorn, one after the other, never at once.
3. Bodies are in the real formats, and each request is about one record:

   * **b24 handler** (``POST /b24/partner``): Bitrix24 outgoing-webhook events,
     ``build_query(event_payload(..., "ONCRMDEALUPDATE", deal_id, token))`` from :mod:`relay.emulator`
     — form-encoded, percent-encoded brackets, ``auth[...]`` block included, ``User-Agent: Bitrix24
     Webhook Engine``.  The record is the deal id.
   * **1C endpoint** (``POST /api/webhook/1c/outgoing-invoices``): what the 1C module sends for a
     customer invoice (:func:`onec_body`) — ``Authorization: Bearer <token>``, ``Content-Type:
     application/json``, ``User-Agent: 1C-Enterprise/8.3``, UTF-8 with a byte order mark,
     ``ЗаписатьJSON``'s pretty print with tabs, Cyrillic keys and values as is; ``{"action": "update",
     "invoiceData": {...}}`` with ``НомерДокумента``, ``ДатаДокумента`` (15.01.2024), client,
     ЄДРПОУ, sum, ``КодВалюты`` "980", the empty ``ДатаОплаты`` and 3 positions (about 1.4 KB).  The
     record is the document: number ``n`` becomes ``НомерДокумента`` "NNNN-NNNNNN" (:func:`doc_number`,
     e.g. "0001-234567", also inside ``СсылкаДокумента``), whose relay key is
     ``outgoing:<НомерДокумента>:2024``.

   The body is built once with a marker and the marker is replaced per request (same bytes as
   building it each time).  Record numbers mix distinct records and repeats: request ``k`` is about
   record ``base + k // 2`` (so most deals/documents get two consecutive calls, sent concurrently),
   except every 4th request (``k % 4 == 3``), which goes to one of 64 "hot" records — repeats that
   merge into the record's pending job (for 1C the merged job's payload is replaced by the latest
   call's data).  Each phase uses its own ``base``, so each phase is checked on its own rows.
4. Two modes (``--mode both`` runs both), the same for both endpoints:

   * **max** (closed loop): ``--concurrency`` keep-alive connections each send the next request as
     soon as the previous answer arrived, until ``--requests`` answers → requests/s.  Driven by
     ``wrk`` (Debian package ``wrk``; a Lua script builds the same bodies, collects every answer's
     ``job_id`` and stops each wrk thread after its share of POSTs) when it is installed, else by a
     Python asyncio client on raw keep-alive streams.  ``--loadgen`` forces one.  Both endpoints use
     the same load generator in a run, so their numbers compare.
   * **rate** (open loop, always the Python asyncio client): request ``k`` is *scheduled* at
     ``t0 + k / rate`` and sent then on an idle keep-alive connection (a new one is opened when all
     are busy), whether or not earlier answers arrived; latency is measured **from the scheduled
     time**, so time spent queueing anywhere (client, kernel backlog, gunicorn, SQLite lock) counts.
     "loadgen lag" is how late the client itself sent (should be ~0: if not, the client is the
     bottleneck and the latencies are pessimistic).

5. After each phase the benchmark stops sending and opens the database with
   :class:`relay.store.Store`: for that phase's records — sync jobs of source ``partner`` whose
   ``deal_id`` is one of the phase's deal ids, or of source ``main`` whose ``deal_id`` is one of the
   phase's 1C keys — the set of ``job_id`` values answered must equal the set of sync jobs stored, the
   sum of their ``events`` column must equal the number of 200 answers, and there must be no non-200
   answer.  For 1C each stored job's ``payload`` must also be its document's decoded data (kind
   ``outgoing``, its ``НомерДокумента``, 3 positions, ``Валюта`` UAH).  ``stored: X/Y, lost: Z``
   means X of the Y acknowledged calls are in the database (``events`` summed), Z acknowledged calls
   are missing.
6. The same measurements are repeated against two **baselines**, under the same gunicorn settings,
   load generators and bodies of both endpoints, so that results read as ratios (comparable across
   machines, where absolute numbers are not):

   * ``trivial`` (``--baseline``): :func:`trivial_app`, a WSGI app in this file that reads the body
     and answers a small JSON 200 — the ceiling of "gunicorn + this machine + this load generator";
   * ``relay-no-db`` (``--nodb``): the relay's own Flask app (same config, body parsing, token
     check, JSON answer) over a stub store that answers at once (``enqueue_sync`` and
     ``enqueue_record``) — so ``relay`` vs ``relay-no-db`` is the cost of the database write, and
     ``relay-no-db`` vs ``trivial`` the cost of Flask and the relay's parsing.

Reading the output
------------------
Each phase prints one block, titled ``[target, endpoint]``: requests/s (max) or p50/p90/p99/max
latency in ms (rate), non-200 answers and transport errors, then CPU: seconds used by the gunicorn
processes and by the load generator per wall second ("cores"), and how busy the whole machine was
(``/proc/stat``).  A server well below the number of cores while the machine is not busy means it
waits (locks, fsync), not computes; "others" well above 0 means another program was using the CPU
and the run is noisy — repeat it.  For the relay the block ends with ``stored: X/Y, lost: Z``.  The
summary puts ``relay``, ``relay-no-db`` and ``trivial`` side by side with ``relay/trivial``, one row
per endpoint ("b24 handler", "1C endpoint") under each measure; then the headline table: the relay's
requests/s, p99 at the fixed rate, calls stored/answered and lost, "b24 handler" and "1C endpoint"
next to each other; then the project's targets (ingress >= 1,000 requests/s, p99 < 20 ms at 300
requests/s, nothing lost), each endpoint held to them, marked PASS/FAIL.  Runs of a few seconds on a
shared 2-core VM vary by up to +-25 %: compare ratios, repeat.

Exit status: 0 when nothing was lost and every request got a 200; 1 otherwise (lost calls, wrong 1C
payloads, non-200 answers or transport errors); with ``--require-targets`` also 3 when a target is
missed; 2 when the benchmark itself failed (gunicorn did not start, wrk failed, ...).

Safety: all traffic goes to 127.0.0.1; every loop is bounded by a request count and a deadline;
gunicorn (its own process group) is stopped at the end, on errors and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APP_TOKEN = "bench-app-token-0123456789abcdef"
ROBOT_KEY = "bench-robot-key-0123456789abcdef"
SOURCE_ID = "partner"
PATH = f"/b24/{SOURCE_ID}"
FORM = "application/x-www-form-urlencoded"
USER_AGENT = "Bitrix24 Webhook Engine"
#: the marker deal id replaced per request in the pre-built body
MARKER = 987654321
#: number of "hot" deals that every 4th request goes to
HOT_DEALS = 64
#: each phase's deal ids live in [base, base + PHASE_SPAN); hot deals at base + HOT_OFFSET
PHASE_SPAN = 10_000_000
HOT_OFFSET = 9_000_000
WARMUP_BASE = 90 * PHASE_SPAN
#: the client drops a keep-alive connection idle longer than this (gunicorn's keepalive is 2 s)
IDLE_MAX = 1.0
#: the 1C base of the generated relay.yaml and its outgoing-invoice intake URL
ONEC_ID = "main"
ONEC_TOKEN = "bench-1c-token-0123456789abcdef"
ONEC_PATH = "/api/webhook/1c/outgoing-invoices"
ONEC_AGENT = "1C-Enterprise/8.3"
#: replaced per request by the document number in the pre-built 1C body (it occurs more than once)
ONEC_MARKER = "#NUMBER#"
#: the year of ДатаДокумента in the 1C bodies: part of the record key ("outgoing:<number>:<year>")
ONEC_YEAR = 2024


# ------------------------------------------------------------------------------------------------
# the trivial baseline app (imported by gunicorn as bench.ingress:trivial_app)
# ------------------------------------------------------------------------------------------------

def trivial_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A WSGI app that reads the request body and answers a small JSON 200; no parsing, no database."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    if environ.get("PATH_INFO") == "/healthz":
        body = b'{"status":"ok"}'
    else:
        body = b'{"deal_id":"0","job_id":0,"merged":false,"ok":true}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class _NoStore:
    """Stands in for :class:`relay.store.Store` in the no-db baseline: answers at once, stores nothing."""

    def enqueue_sync(self, source_id: str, deal_id: str, trigger: str, *, event_token: str | None = None,
                     now: float | None = None) -> Any:
        """Pretend to store the call (job id 0)."""
        from relay.models import Enqueued

        return Enqueued(job_id=0, merged=False)

    def enqueue_record(self, source_id: str, key: str, payload: dict[str, Any], trigger: str = "1C",
                       now: float | None = None) -> Any:
        """Pretend to store a 1C call (job id 0)."""
        from relay.models import Enqueued

        return Enqueued(job_id=0, merged=False)

    def ping(self) -> None:
        """Always healthy."""

    def check_writable(self) -> str | None:
        """Always writable (``/healthz`` answers 200)."""
        return None

    def counts(self) -> dict[str, dict[str, int]]:
        """No jobs."""
        return {}


def build_nodb_app() -> Any:
    """The relay's own Flask app (same config, parsing, auth, answers) over :class:`_NoStore`."""
    from relay.config import load_config
    from relay.redact import configure_logging
    from relay.settings import Settings, environment
    from relay.web.app import create_app

    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(load_config(settings.config, environment()), _NoStore())  # type: ignore[arg-type]


def __getattr__(name: str) -> Any:
    """``bench.ingress:nodb_app`` for gunicorn, built on first access (the trivial app imports no relay code)."""
    if name == "nodb_app":
        return build_nodb_app()
    raise AttributeError(name)


# ------------------------------------------------------------------------------------------------
# request bodies, deal ids and document numbers
# ------------------------------------------------------------------------------------------------

def deal_for(k: int, base: int) -> int:
    """The record number of request ``k`` of a phase (the wrk Lua script computes the same): a deal id
    (Bitrix24), or the number behind a 1C document's НомерДокумента (:func:`doc_number`)."""
    if k % 4 == 3:
        return base + HOT_OFFSET + (k // 4) % HOT_DEALS
    return base + k // 2


def doc_number(n: int) -> str:
    """A 1C-style document number for record number ``n``: 1,234,567 -> "0001-234567" (one-to-one)."""
    return f"{n // 1_000_000:04d}-{n % 1_000_000:06d}"


_DOC_KEY = re.compile(rf"^outgoing:(\d{{4}})-(\d{{6}}):{ONEC_YEAR}$")


def number_of_key(key: str) -> int | None:
    """The record number behind a 1C key ``outgoing:0001-234567:2024`` (None for other keys)."""
    m = _DOC_KEY.match(key)
    return int(m.group(1)) * 1_000_000 + int(m.group(2)) if m else None


def body_template() -> tuple[bytes, bytes]:
    """``(before, after)`` the deal id in a real ``ONCRMDEALUPDATE`` form body (emulator's format)."""
    from relay.emulator import PortalConfig, event_payload
    from relay.phpquery import build_query

    portal = PortalConfig(domain="partner.bitrix24.test", application_token=APP_TOKEN)
    body = build_query(event_payload(portal, "ONCRMDEALUPDATE", MARKER, APP_TOKEN, ts=int(time.time())))
    assert body.count(str(MARKER)) == 1, "marker deal id must occur once"
    before, after = body.split(str(MARKER))
    return before.encode(), after.encode()


def onec_body(number: str) -> bytes:
    """A 1C outgoing-invoice call as the module writes it (``ЗаписатьJSON`` + ``УстановитьТелоИзСтроки(...,
    КодировкаТекста.UTF8)``): UTF-8 with a BOM, pretty-printed with tabs, Cyrillic as is."""
    data = {"action": "update", "invoiceData": {
        "СсылкаДокумента": f"Счет на оплату покупателю {number} от 15.01.{ONEC_YEAR} 10:30:00",
        "НомерДокумента": number,
        "ДатаДокумента": f"{ONEC_YEAR}-01-15T10:30:00",
        "Клиент": "ТОВ Ромашка",
        "ЄДРПОУ": "12345678",
        "СуммаДокумента": 1500.5,
        "КодВалюты": "980",
        "Проведен": True,
        "Комментарий": "",
        "ДатаОплаты": "0001-01-01T00:00:00",
        "КодКлиента": "000123",
        "ИННКлиента": "3456789012",
        "positions": [
            {"НаименованиеТовара": "Папір офісний А4", "КодТовара": "00045", "Количество": 2, "Цена": 450.25,
             "Сумма": 900.5, "ЕдиницаИзмерения": "уп"},
            {"НаименованиеТовара": "Картридж HP 85A", "КодТовара": "00112", "Количество": 1, "Цена": 500,
             "Сумма": 500, "ЕдиницаИзмерения": "шт"},
            {"НаименованиеТовара": "Ручка кулькова синя", "КодТовара": "00317", "Количество": 4, "Цена": 25,
             "Сумма": 100, "ЕдиницаИзмерения": "шт"},
        ],
    }}
    return b"\xef\xbb\xbf" + json.dumps(data, ensure_ascii=False, indent="\t").encode("utf-8")


@dataclass(frozen=True)
class Endpoint:
    """One intake URL under test: how its requests look and how its stored jobs are recognised."""

    name: str  # "b24" | "1c" (--endpoint)
    title: str  # in the output
    path: str
    headers: tuple[tuple[str, str], ...]
    parts: tuple[bytes, ...]  # the body split where the record's identifier goes
    ident: Callable[[int], str]  # record number -> the identifier in the body
    lua_ident: str  # the same as a Lua expression of ``n`` (wrk)
    source_id: str  # jobs.source_id of its stored calls
    number: Callable[[str], int | None]  # jobs.deal_id -> record number (None: not one of ours)

    def body(self, n: int) -> bytes:
        """The body of a call about record number ``n``."""
        return self.ident(n).encode().join(self.parts)


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def make_endpoint(name: str) -> Endpoint:
    """``b24``: ``POST /b24/partner`` with ONCRMDEALUPDATE events; ``1c``: ``POST ONEC_PATH`` with
    outgoing invoices of base ``main``.  Imports relay code (call after ``sys.path`` is set)."""
    if name == "b24":
        return Endpoint("b24", "b24 handler", PATH, (("User-Agent", USER_AGENT), ("Content-Type", FORM)),
                        body_template(), str, 'string.format("%d", n)', SOURCE_ID, _int_or_none)
    body = onec_body(ONEC_MARKER)
    return Endpoint("1c", "1C endpoint", ONEC_PATH,
                    (("User-Agent", ONEC_AGENT), ("Content-Type", "application/json"),
                     ("Authorization", f"Bearer {ONEC_TOKEN}")),
                    tuple(body.split(ONEC_MARKER.encode())), doc_number,
                    'string.format("%04d-%06d", math.floor(n / 1000000), n % 1000000)', ONEC_ID, number_of_key)


class RequestFactory:
    """Builds the raw HTTP/1.1 request bytes for request ``k`` of a phase."""

    def __init__(self, port: int, base: int, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.base = base
        self.head = (f"POST {endpoint.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     + "".join(f"{name}: {value}\r\n" for name, value in endpoint.headers)
                     + "Accept: */*\r\n").encode()

    def __call__(self, k: int) -> bytes:
        body = self.endpoint.body(deal_for(k, self.base))
        return self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body


# ------------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------------

@dataclass
class Results:
    """What one phase observed on the client side."""

    label: str
    loadgen: str
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    answers: list[tuple[int, bool]] = field(default_factory=list)  # (job_id, merged) of 200 answers
    latencies: list[float] = field(default_factory=list)  # seconds
    lags: list[float] = field(default_factory=list)  # seconds the client sent late (rate mode)
    connections: int = 0  # connections opened (rate mode)
    wall: float = 0.0
    server_cpu: float = 0.0
    loadgen_cpu: float = 0.0
    machine_busy: float = math.nan  # busy fraction of all cores (from /proc/stat), whoever used them
    wrk_latency_ms: dict[float, float] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        """Number of 200 answers."""
        return self.statuses.get(200, 0)

    @property
    def non_200(self) -> int:
        """Answers with another status."""
        return sum(n for s, n in self.statuses.items() if s != 200)

    @property
    def answered(self) -> int:
        """Requests that got any HTTP answer."""
        return sum(self.statuses.values())

    @property
    def rps(self) -> float:
        """Answered requests per second of wall time."""
        return self.answered / self.wall if self.wall > 0 else 0.0

    def record(self, status: int, body: bytes) -> None:
        """Count one HTTP answer and keep its job id."""
        self.statuses[status] += 1
        if status == 200:
            m = _JOB.search(body)
            if m:
                self.answers.append((int(m.group(1)), _MERGED.search(body) is not None))

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile of the latencies in ms (wrk's own when wrk ran)."""
        if not self.latencies:
            return self.wrk_latency_ms.get(q, math.nan)
        data = sorted(self.latencies)
        return data[max(0, math.ceil(q / 100 * len(data)) - 1)] * 1000


_JOB = re.compile(rb'"job_id":\s*(\d+)')
_MERGED = re.compile(rb'"merged":\s*true')


# ------------------------------------------------------------------------------------------------
# the Python asyncio load generator (raw HTTP/1.1 over keep-alive streams)
# ------------------------------------------------------------------------------------------------

class Conn:
    """One keep-alive connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.last_used = time.monotonic()

    @classmethod
    async def open(cls, port: int) -> Conn:
        """Connect to 127.0.0.1:port with TCP_NODELAY."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def roundtrip(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send one request; return (status, body, keep-alive)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, keep = 0, True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
        body = await self.reader.readexactly(length) if length else b""
        self.last_used = time.monotonic()
        return status, body, keep

    def close(self) -> None:
        """Close without waiting."""
        self.writer.close()


async def _exchange(conn: Conn | None, port: int, request: bytes, timeout: float,
                    res: Results) -> tuple[Conn, int, bytes, bool] | None:
    """One request on ``conn`` (opened when None); None after counting a transport error."""
    try:
        if conn is None:
            conn = await asyncio.wait_for(Conn.open(port), timeout)
        status, body, keep = await asyncio.wait_for(conn.roundtrip(request), timeout)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        res.errors[type(exc).__name__] += 1
        if conn is not None:
            conn.close()
        return None
    return conn, status, body, keep


async def closed_loop(port: int, make: Callable[[int], bytes], total: int, concurrency: int,
                      timeout: float, deadline: float, res: Results) -> None:
    """``concurrency`` clients send ``total`` requests back to back (max-throughput mode)."""
    counter = itertools.count()

    async def client() -> None:
        conn: Conn | None = None
        while True:
            k = next(counter)
            if k >= total or time.monotonic() > deadline:
                break
            request = make(k)
            started = time.perf_counter()
            res.sent += 1
            answer = await _exchange(conn, port, request, timeout, res)
            if answer is None:
                conn = None
                continue
            conn, status, body, keep = answer
            res.latencies.append(time.perf_counter() - started)
            res.record(status, body)
            if not keep:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))


async def open_loop(port: int, make: Callable[[int], bytes], rate: float, duration: float,
                    timeout: float, max_conns: int, res: Results) -> None:
    """Send ``rate * duration`` requests, request ``k`` at ``t0 + k / rate`` (fixed-rate mode)."""
    total = max(1, int(rate * duration))
    idle: list[Conn] = []
    slots = asyncio.Semaphore(max_conns)
    tasks: set[asyncio.Task[None]] = set()

    async def one(k: int, scheduled: float) -> None:
        res.lags.append(max(0.0, time.perf_counter() - scheduled))  # the client's own lateness
        async with slots:  # waiting here (all max_conns busy) counts in the latency
            conn: Conn | None = None
            while idle and conn is None:
                candidate = idle.pop()
                if time.monotonic() - candidate.last_used < IDLE_MAX:
                    conn = candidate
                else:
                    candidate.close()
            request = make(k)
            res.sent += 1
            if conn is None:
                res.connections += 1
            answer = await _exchange(conn, port, request, timeout, res)
            if answer is None:
                return
            conn, status, body, keep = answer
            res.latencies.append(time.perf_counter() - scheduled)
            res.record(status, body)
            if keep:
                idle.append(conn)
            else:
                conn.close()

    t0 = time.perf_counter() + 0.05
    for k in range(total):
        scheduled = t0 + k / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(k, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(set(tasks), timeout=timeout + 5)
    for task in list(tasks):
        task.cancel()
    for conn in idle:
        conn.close()


def run_python_closed(port: int, endpoint: Endpoint, base: int, total: int, concurrency: int, timeout: float,
                      max_seconds: float, label: str, server: Server | None = None) -> Results:
    """Max-throughput phase with the Python client."""
    res = Results(label=label, loadgen=f"python asyncio ({concurrency} keep-alive connections)")
    make = RequestFactory(port, base, endpoint)
    machine = MachineCPU()
    cpu0, srv0, t0 = time.process_time(), server.cpu_seconds() if server else 0.0, time.perf_counter()
    asyncio.run(closed_loop(port, make, total, concurrency, timeout, time.monotonic() + max_seconds, res))
    res.wall = time.perf_counter() - t0
    res.machine_busy = machine.busy()
    res.loadgen_cpu = time.process_time() - cpu0
    res.server_cpu = (server.cpu_seconds() - srv0) if server else 0.0
    return res


def run_python_open(port: int, endpoint: Endpoint, base: int, rate: float, duration: float, timeout: float,
                    label: str, server: Server) -> Results:
    """Fixed-rate phase with the Python client (open loop)."""
    res = Results(label=label, loadgen="python asyncio open loop")
    make = RequestFactory(port, base, endpoint)
    machine = MachineCPU()
    cpu0, srv0, t0 = time.process_time(), server.cpu_seconds(), time.perf_counter()
    asyncio.run(open_loop(port, make, rate, duration, timeout, 512, res))
    res.wall = time.perf_counter() - t0
    res.machine_busy = machine.busy()
    res.loadgen_cpu = time.process_time() - cpu0
    res.server_cpu = server.cpu_seconds() - srv0
    return res


# ------------------------------------------------------------------------------------------------
# the wrk load generator (max mode)
# ------------------------------------------------------------------------------------------------

def _lua_str(data: bytes) -> str:
    """A Lua string literal for ``data``."""
    out = []
    for b in data:
        c = chr(b)
        if c in '\\"' or b < 32 or b > 126:
            out.append(f"\\{b:03d}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


_WRK_LUA = r"""
-- generated by bench/ingress.py: real-format bodies (%(what)s), answers collected per thread
local parts = {%(parts)s}
local function ident(n) return %(ident)s end
local base, hot_base, hot_n, nthreads, total = %(base)d, %(hot_base)d, %(hot_n)d, %(nthreads)d, %(total)d
local path, donefile = "%(path)s", "%(donefile)s"
local threads, next_tid = {}, 0

function setup(thread)
  thread:set("tid", next_tid)
  local q = math.floor(total / nthreads)
  if next_tid < total %% nthreads then q = q + 1 end
  thread:set("quota", q)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

function init(args)
  sent, got, others = 0, 0, 0
  primed = tid ~= 0  -- wrk calls thread 0's request() once before starting, to check it: not sent
  ids, statuses = {}, {}
  hdrs = {%(headers)s}
  probe = wrk.format("GET", "/healthz")
end

function request()
  if not primed then primed = true; return probe end
  if sent >= quota then return probe end  -- stores nothing; keeps other connections busy until done
  local k = tid + sent * nthreads
  sent = sent + 1
  local deal
  if k %% 4 == 3 then deal = hot_base + (math.floor(k / 4) %% hot_n) else deal = base + math.floor(k / 2) end
  return wrk.format("POST", path, hdrs, table.concat(parts, ident(deal)))
end

function response(status, headers, body)
  if string.find(body, '"ok":', 1, true) then  -- an answer to a POST (not a /healthz probe)
    got = got + 1
    statuses[status] = (statuses[status] or 0) + 1
    local id = string.match(body, '"job_id":%%s*(%%d+)')
    if id then
      if string.find(body, '"merged":%%s*true') then id = id .. "m" end
      ids[#ids + 1] = id
    end
    if got >= quota then  -- tell bench/ingress.py (it ends wrk with SIGINT), stop this thread
      local f = io.open(donefile, "a")
      f:write(tid .. "\n")
      f:close()
      wrk.thread:stop()
    end
  else
    others = others + 1
  end
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write("IDS " .. table.concat(t:get("ids"), " ") .. "\n")
    for s, n in pairs(t:get("statuses")) do io.write(string.format("STATUS %%d %%d\n", s, n)) end
    io.write(string.format("SENT %%d\n", t:get("sent")))
  end
  local e = summary.errors
  io.write(string.format("SUMMARY %%d %%d %%d %%d %%d %%d\n", summary.duration, e.connect, e.read, e.write,
                         e.status, e.timeout))
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("LAT %%g %%d\n", p, latency:percentile(p)))
  end
  io.write(string.format("LAT 100 %%d\n", latency.max))
end
"""


def wrk_version(wrk: str) -> str:
    """``wrk 4.1.0`` or just ``wrk``."""
    try:
        out = subprocess.run([wrk, "--version"], check=False, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "wrk"
    m = re.search(r"wrk\s+(\S+)", out.stdout + out.stderr)
    return f"wrk {m.group(1)}" if m else "wrk"


def run_wrk(wrk: str, port: int, endpoint: Endpoint, base: int, total: int, concurrency: int, timeout: float,
            max_seconds: float, label: str, server: Server, workdir: Path) -> Results:
    """Max-throughput phase with wrk: each wrk thread stops after its share of POST answers."""
    nthreads = max(1, min(os.cpu_count() or 2, concurrency))
    script = workdir / f"wrk-{base}.lua"
    donefile = workdir / f"wrk-{base}.done"
    donefile.write_text("")
    script.write_text(_WRK_LUA % {
        "what": endpoint.title, "parts": ", ".join(_lua_str(part) for part in endpoint.parts),
        "ident": endpoint.lua_ident, "base": base, "hot_base": base + HOT_OFFSET, "hot_n": HOT_DEALS,
        "nthreads": nthreads, "total": total, "path": endpoint.path, "donefile": donefile,
        "headers": ", ".join(f"[{_lua_str(name.encode())}] = {_lua_str(value.encode())}"
                             for name, value in endpoint.headers),
    })
    res = Results(label=label, loadgen=f"{wrk_version(wrk)} ({nthreads} threads, {concurrency} keep-alive connections)")
    cmd = [wrk, "-t", str(nthreads), "-c", str(concurrency), "-d", f"{int(max_seconds)}s",
           "--timeout", f"{math.ceil(timeout)}s", "-s", str(script), f"http://127.0.0.1:{port}{endpoint.path}"]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine = MachineCPU()
    srv0, t0 = server.cpu_seconds(), time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # wrk's main thread sleeps for the whole -d even when every thread stopped: end it early
        # (SIGINT makes wrk stop, then print its results) once each thread reported its quota done
        deadline = time.monotonic() + max_seconds + 5
        while proc.poll() is None and time.monotonic() < deadline:
            if len(donefile.read_text().split()) >= nthreads or server.proc.poll() is not None:
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.002)
        out, err = proc.communicate(timeout=max_seconds + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wall = time.perf_counter() - t0
    res.machine_busy = machine.busy()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res.server_cpu = server.cpu_seconds() - srv0
    res.loadgen_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if proc.returncode != 0 and "SUMMARY" not in out:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.strip()[-500:]}")
    res.wall = wall
    for line in out.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "IDS":
            for tok in parts[1:]:
                res.answers.append((int(tok.rstrip("m")), tok.endswith("m")))
        elif parts[0] == "STATUS":
            res.statuses[int(parts[1])] += int(parts[2])
        elif parts[0] == "SENT":
            res.sent += int(parts[1])
        elif parts[0] == "SUMMARY":
            res.wall = int(parts[1]) / 1e6
            for name, n in zip(("connect", "read", "write", "status", "timeout"), parts[2:], strict=False):
                if int(n) and name != "status":  # wrk's "status" = non-2xx, already in statuses
                    res.errors[f"wrk {name}"] += int(n)
        elif parts[0] == "LAT":
            res.wrk_latency_ms[float(parts[1])] = int(parts[2]) / 1000
    return res


# ------------------------------------------------------------------------------------------------
# gunicorn
# ------------------------------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gunicorn_path() -> str:
    """The venv's gunicorn (the repository's .venv, else next to this interpreter, else PATH)."""
    for candidate in (ROOT / ".venv/bin/gunicorn", Path(sys.executable).parent / "gunicorn"):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("gunicorn")
    if not found:
        raise SystemExit("gunicorn not found: run from the repository with .venv installed")
    return found


class MachineCPU:
    """Busy fraction of all cores between construction and :meth:`busy` (``/proc/stat``, includes softirq)."""

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[int, int]:
        try:
            values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        except (OSError, ValueError, IndexError):
            return 0, 0
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)

    def busy(self) -> float:
        """Busy share since construction, 0..1 (nan when unknown)."""
        end = self._read()
        total = end[1] - self.start[1]
        return (end[0] - self.start[0]) / total if total > 0 else math.nan


def _extra_gunicorn_flags(gunicorn: str) -> list[str]:
    """``--no-control-socket`` where this gunicorn has it, so runs do not share ~/.gunicorn/gunicorn.ctl."""
    try:
        out = subprocess.run([gunicorn, "--help"], check=False, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return ["--no-control-socket"] if "--no-control-socket" in out else []


def _proc_cpu(pid: int) -> float:
    """utime + stime of a process in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (scans /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(entry))
    return out


class Server:
    """A gunicorn master started by this benchmark, in its own process group."""

    def __init__(self, name: str, app: str, workers: int, threads: int, env: dict[str, str], log: Path) -> None:
        self.name, self.log, self.workers = name, log, workers
        self.port = free_port()
        gunicorn = gunicorn_path()
        cmd = [gunicorn, "--bind", f"127.0.0.1:{self.port}", "--worker-class", "gthread",
               "--threads", str(threads), "--workers", str(workers), *_extra_gunicorn_flags(gunicorn), app]
        self._log = log.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait for ``GET /healthz`` = 200 and for all worker processes."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: gunicorn exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200 and len(_children(self.proc.pid)) >= self.workers:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: /healthz not 200 within {timeout:.0f} s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the master and its workers."""
        return _proc_cpu(self.proc.pid) + sum(_proc_cpu(c) for c in _children(self.proc.pid))

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of gunicorn's output."""
        self._log.flush()
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the group, then SIGKILL it if it is still there after 10 s."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()


# ------------------------------------------------------------------------------------------------
# the environment: relay.yaml, mapping, database
# ------------------------------------------------------------------------------------------------

def write_config(folder: Path) -> Path:
    """A relay.yaml with one target, one source ``partner`` and one 1C base ``main``; webhooks point where
    nothing listens."""
    (folder / "mappings").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config/mappings/partner.yaml", folder / "mappings/partner.yaml")
    shutil.copy(ROOT / "config/mappings/1c.example.yaml", folder / "mappings/1c.yaml")
    dead = free_port()  # nothing listens there: the worker is not run, only ingress is measured
    path = folder / "relay.yaml"
    path.write_text(f"""# written by bench/ingress.py
target:
  webhook_url: http://127.0.0.1:{dead}/rest/1/benchtargetsecret/
sources:
  - id: {SOURCE_ID}
    webhook_url: http://127.0.0.1:{dead}/rest/1/benchsourcesecret/
    application_token: {APP_TOKEN}
    robot_key: {ROBOT_KEY}
    mapping: mappings/partner.yaml
onec:
  - {{id: {ONEC_ID}, token: {ONEC_TOKEN}, mapping: mappings/1c.yaml, timezone: Europe/Kyiv}}
""")
    return path


@dataclass
class StoreCheck:
    """Answers of one phase compared with the stored sync jobs of that phase's deals (or 1C documents)."""

    acked: int  # 200 answers with a job id
    stored: int  # sum of events of the phase's jobs
    jobs_answered: int
    jobs_stored: int
    missing_jobs: int  # answered job ids not in the database
    extra_jobs: int  # stored jobs no answer named (e.g. the client timed out)
    created_answers: int  # answers with merged=false
    bad_payloads: int = 0  # 1C: stored jobs whose payload is not the data of their document

    @property
    def lost(self) -> int:
        """Acknowledged calls not found in the database."""
        return max(0, self.acked - self.stored) + (self.missing_jobs if self.stored >= self.acked else 0)

    def line(self) -> str:
        """``stored: X/Y, lost: Z`` plus the job-level detail."""
        shown = min(self.stored, self.acked)
        text = (f"stored: {shown}/{self.acked}, lost: {self.lost}   (jobs: {self.jobs_answered} answered, "
                f"{self.jobs_stored} in database, {self.missing_jobs} missing")
        if self.stored > self.acked or self.extra_jobs:
            text += f"; {self.stored - self.acked} stored calls without a 200 answer, {self.extra_jobs} such jobs"
        if self.created_answers != self.jobs_stored:
            text += f"; NOTE {self.created_answers} answers said merged=false"
        if self.bad_payloads:
            text += f"; {self.bad_payloads} payloads are not their document's data"
        return text + ")"


def _payload_matches(payload: str, number: str) -> bool:
    """True when a 1C job's payload is the decoded data of document ``number`` (an outgoing invoice)."""
    try:
        stored = json.loads(payload)
        data = stored["data"]
        return (stored["kind"] == "outgoing" and data["НомерДокумента"] == number
                and len(data["positions"]) == 3 and data["Валюта"] == "UAH")
    except (ValueError, KeyError, TypeError):
        return False


def check_store(db_url: str, endpoint: Endpoint, base: int, res: Results) -> StoreCheck:
    """Compare ``res``'s 200 answers with the sync jobs of ``endpoint``'s source stored for record numbers
    in [base, base + PHASE_SPAN) (deal ids, or 1C keys ``outgoing:<doc_number(n)>:<year>``)."""
    from sqlalchemy import select

    from relay.store import Store, jobs

    columns = [jobs.c.id, jobs.c.deal_id, jobs.c.events] + ([jobs.c.payload] if endpoint.name == "1c" else [])
    store = Store(db_url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(select(*columns).where(jobs.c.kind == "sync",
                                                       jobs.c.source_id == endpoint.source_id)).all()
    finally:
        store.close()
    mine, bad = {}, 0
    for r in rows:
        n = endpoint.number(r.deal_id)
        if n is not None and base <= n < base + PHASE_SPAN:
            mine[r.id] = r.events
            if endpoint.name == "1c" and not _payload_matches(r.payload, doc_number(n)):
                bad += 1
    answered = {job_id for job_id, _ in res.answers}
    return StoreCheck(
        acked=len(res.answers), stored=sum(mine.values()), jobs_answered=len(answered), jobs_stored=len(mine),
        missing_jobs=len(answered - mine.keys()), extra_jobs=len(mine.keys() - answered),
        created_answers=sum(1 for _, merged in res.answers if not merged), bad_payloads=bad,
    )


# ------------------------------------------------------------------------------------------------
# reporting
# ------------------------------------------------------------------------------------------------

@dataclass
class Phase:
    """One measured phase: its results and (relay only) its store check."""

    target: str  # "relay" | "nodb" | "baseline"
    endpoint: Endpoint
    mode: str  # "max" | "rate"
    res: Results
    check: StoreCheck | None = None

    @property
    def clean(self) -> bool:
        """No non-200, no transport error, nothing lost, no wrong payload."""
        lost = self.check.lost + self.check.missing_jobs + self.check.bad_payloads if self.check else 0
        return self.res.non_200 == 0 and not self.res.errors and lost == 0


def _errors_text(res: Results) -> str:
    parts = [f"non-200: {res.non_200}" + (f" {dict(sorted(res.statuses.items()))}" if res.non_200 else "")]
    parts.append("transport errors: " + (", ".join(f"{k} {v}" for k, v in res.errors.items()) or "0"))
    return "; ".join(parts)


def print_phase(p: Phase, cores: int) -> None:
    """One block per phase."""
    r = p.res
    cpu = ""
    if r.wall > 0:
        server, loadgen = r.server_cpu / r.wall, r.loadgen_cpu / r.wall
        others = r.machine_busy * cores - server - loadgen
        cpu = (f"CPU: server {server:.2f} cores, load generator {loadgen:.2f} cores; machine "
               f"{r.machine_busy * 100:.0f}% busy of {cores} cores (rest: kernel, this script, others ~{others:.2f})")
        if others > 0.3:
            cpu += "  <- other processes were busy: numbers are noisy"
    if p.mode == "max":
        print(f"    {r.rps:,.0f} requests/s  ({r.answered} answers in {r.wall:.2f} s; latency p50 "
              f"{r.percentile_ms(50):.1f} ms, p99 {r.percentile_ms(99):.1f} ms)")
    else:
        lag = sorted(r.lags)[max(0, math.ceil(0.99 * len(r.lags)) - 1)] * 1000 if r.lags else math.nan
        print(f"    latency from scheduled send: p50 {r.percentile_ms(50):.1f}  p90 {r.percentile_ms(90):.1f}  "
              f"p99 {r.percentile_ms(99):.1f}  max {r.percentile_ms(100):.1f} ms  "
              f"({r.answered} answers, {r.rps:,.0f}/s achieved, {r.connections} connections; "
              f"loadgen lag p99 {lag:.1f} ms)")
    print(f"    {_errors_text(r)}")
    print(f"    {cpu}")
    if p.check is not None:
        print(f"    {p.check.line()}")


def _fmt(value: float, spec: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


#: column titles of the summary, in order
TITLES = {"relay": "relay", "nodb": "relay-no-db", "baseline": "trivial"}
#: the project's targets for the relay (each measured endpoint is held to them)
TARGET_RPS = 1000
TARGET_P99_MS = 20.0
TARGET_AT_RATE = 300


def print_summary(phases: list[Phase], args: argparse.Namespace, loadgens: dict[str, str]) -> bool:
    """The final tables and target verdicts; returns True when every target was met."""
    get = {(p.target, p.endpoint.name, p.mode): p for p in phases}
    targets = [t for t in TITLES if any(p.target == t for p in phases)]
    endpoints: dict[str, Endpoint] = {}
    for p in phases:
        endpoints.setdefault(p.endpoint.name, p.endpoint)
    ratio_title = "relay/trivial" if "baseline" in targets and "relay" in targets else ""

    def row(name: str, mode: str, fn: Callable[[Results], float], spec: str) -> None:
        for key, endpoint in endpoints.items():
            if not any((t, key, mode) in get for t in targets):
                continue
            values = [fn(get[(t, key, mode)].res) if (t, key, mode) in get else math.nan for t in targets]
            cells = "".join(f"{_fmt(v, spec):>13}" for v in values)
            if ratio_title:
                rel, base = values[targets.index("relay")], values[targets.index("baseline")]
                cells += f"{_fmt(rel / base if base else math.nan, '.2f'):>15}"
            print(f"  {name:<28}{endpoint.title:<13}{cells}")
            name = ""

    print()
    print("=" * 78)
    print(f"summary: gunicorn gthread, {args.workers} workers x {args.threads} threads, "
          f"{os.cpu_count()} CPU cores")
    for mode, gen in loadgens.items():
        print(f"  load generator ({mode} mode): {gen}")
    print(f"  {'':<41}" + "".join(f"{TITLES[t]:>13}" for t in targets) + (f"{ratio_title:>15}" if ratio_title else ""))
    row(f"max mode requests/s (c={args.concurrency})", "max", lambda r: r.rps, ",.0f")
    row(f"p50 ms at {args.rate:g}/s", "rate", lambda r: r.percentile_ms(50), ".1f")
    row(f"p90 ms at {args.rate:g}/s", "rate", lambda r: r.percentile_ms(90), ".1f")
    row(f"p99 ms at {args.rate:g}/s", "rate", lambda r: r.percentile_ms(99), ".1f")
    row(f"max ms at {args.rate:g}/s", "rate", lambda r: r.percentile_ms(100), ".1f")
    relay_phases = [p for p in phases if p.target == "relay"]
    for p in relay_phases:
        print(f"  relay, {p.endpoint.title}, {p.mode} mode: non-200 {p.res.non_200}, transport errors "
              f"{sum(p.res.errors.values())}; " + (p.check.line() if p.check else ""))
    verdicts = []
    if relay_phases:
        # the headline: the 1C endpoint next to the Bitrix24 handler, both under the relay with its database
        print(f"  {'relay (with database)':<22}{f'requests/s (c={args.concurrency})':>20}"
              f"{f'p99 ms at {args.rate:g}/s':>18}{'stored/answered':>18}{'lost':>7}")
        for key, endpoint in endpoints.items():
            mine = [p for p in relay_phases if p.endpoint.name == key]
            if not mine:
                continue
            rps = get[("relay", key, "max")].res.rps if ("relay", key, "max") in get else math.nan
            p99 = get[("relay", key, "rate")].res.percentile_ms(99) if ("relay", key, "rate") in get else math.nan
            checks = [p.check for p in mine if p.check is not None]
            stored = f"{sum(min(c.stored, c.acked) for c in checks):,}/{sum(c.acked for c in checks):,}"
            lost = sum(c.lost + c.missing_jobs + c.bad_payloads for c in checks)
            print(f"  {endpoint.title:<22}{_fmt(rps, ',.0f'):>20}{_fmt(p99, '.1f'):>18}{stored:>18}{lost:>7}")
            if not math.isnan(rps):
                verdicts.append((f"{endpoint.title} >= {TARGET_RPS:,} requests/s ({rps:,.0f})", rps >= TARGET_RPS))
            if not math.isnan(p99):
                verdicts.append((f"{endpoint.title} p99 < {TARGET_P99_MS:g} ms at {args.rate:g}/s ({p99:.1f} ms)"
                                 + ("" if args.rate >= TARGET_AT_RATE else f" [the target is at {TARGET_AT_RATE}/s]"),
                                 p99 < TARGET_P99_MS and args.rate >= TARGET_AT_RATE))
    verdicts.append(("nothing lost, every call answered 200", all(p.clean for p in relay_phases)))
    print("targets: " + "; ".join(f"{text}: {'PASS' if ok else 'FAIL'}" for text, ok in verdicts))
    return all(ok for _, ok in verdicts)


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None,
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    ap.add_argument("--threads", type=int, default=16, help="gunicorn threads per worker (gthread)")
    ap.add_argument("--concurrency", type=int, default=32, help="connections in max mode")
    ap.add_argument("--requests", type=int, default=5000, help="requests in max mode")
    ap.add_argument("--rate", type=float, default=300.0, help="requests/s in rate mode")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of rate mode")
    ap.add_argument("--mode", choices=("both", "max", "rate"), default="both")
    ap.add_argument("--endpoint", choices=("both", "b24", "1c"), default="both",
                    help=f"b24: POST {PATH} (Bitrix24 events); 1c: POST {ONEC_PATH} (1C outgoing invoices)")
    ap.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure the trivial WSGI app under the same gunicorn settings")
    ap.add_argument("--nodb", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure the relay's Flask app with a stub store (no database)")
    ap.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                    help="max-mode load generator: wrk when installed (auto), else Python asyncio")
    ap.add_argument("--warmup", type=int, default=300, help="POSTs sent before measuring (not checked)")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="upper bound of one max-mode phase")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (config, db, logs)")
    ap.add_argument("--require-targets", action="store_true", help="exit 3 when a project target is missed")
    args = ap.parse_args(argv)
    for name in ("workers", "threads", "concurrency", "requests", "rate", "duration"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name} must be > 0")
    return args


def measure(target: str, server: Server, endpoints: list[Endpoint], args: argparse.Namespace, wrk: str | None,
            db_url: str | None, workdir: Path, loadgens: dict[str, str], phase_no: itertools.count[int]) -> list[Phase]:
    """For each endpoint: warm-up, then the selected modes, against one running server."""
    out: list[Phase] = []
    cores = os.cpu_count() or 1
    for endpoint in endpoints:
        name = f"{TITLES[target]}, {endpoint.title}"
        if args.warmup:
            run_python_closed(server.port, endpoint, WARMUP_BASE + next(phase_no) * PHASE_SPAN, args.warmup,
                              min(8, args.concurrency), args.timeout, 30, "warm-up")
        if args.mode in ("both", "max"):
            base = (next(phase_no) + 1) * PHASE_SPAN
            print(f"[{name}] max: {args.requests} requests, {args.concurrency} connections", flush=True)
            if wrk:
                res = run_wrk(wrk, server.port, endpoint, base, args.requests, args.concurrency, args.timeout,
                              args.max_seconds, f"{target} {endpoint.name} max", server, workdir)
            else:
                res = run_python_closed(server.port, endpoint, base, args.requests, args.concurrency, args.timeout,
                                        args.max_seconds, f"{target} {endpoint.name} max", server)
            loadgens["max"] = res.loadgen
            phase = Phase(target, endpoint, "max", res, check_store(db_url, endpoint, base, res) if db_url else None)
            print_phase(phase, cores)
            out.append(phase)
        if args.mode in ("both", "rate"):
            base = (next(phase_no) + 1) * PHASE_SPAN
            print(f"[{name}] rate: {args.rate:g} requests/s for {args.duration:g} s, open loop", flush=True)
            res = run_python_open(server.port, endpoint, base, args.rate, args.duration, args.timeout,
                                  f"{target} {endpoint.name} rate", server)
            loadgens["rate"] = res.loadgen
            phase = Phase(target, endpoint, "rate", res, check_store(db_url, endpoint, base, res) if db_url else None)
            print_phase(phase, cores)
            out.append(phase)
    return out


def _terminate(signum: int, _frame: object) -> None:
    """SIGTERM handler: unwind like Ctrl-C so that gunicorn is stopped."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see the module docstring for the exit status."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)  # so `finally` stops gunicorn on kill too
    sys.path.insert(0, str(ROOT))
    from relay.store import Store

    wrk = shutil.which("wrk") if args.loadgen in ("auto", "wrk") else None
    if args.loadgen == "wrk" and not wrk:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    endpoints = [make_endpoint(name) for name in ("b24", "1c") if args.endpoint in ("both", name)]
    workdir = Path(tempfile.mkdtemp(prefix="b24relay-bench-"))
    servers: list[Server] = []
    phases: list[Phase] = []
    loadgens: dict[str, str] = {}
    phase_no = itertools.count()
    try:
        config = write_config(workdir)
        db_url = f"sqlite:///{workdir / 'relay.db'}"
        Store(db_url).close()  # schema first, so the workers do not race to create it
        env = {**os.environ, "RELAY_CONFIG": str(config), "RELAY_DATABASE_URL": db_url,
               "RELAY_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
        print(f"b24relay ingress benchmark: gunicorn gthread {args.workers} workers x {args.threads} threads, "
              f"{os.cpu_count()} cores; workdir {workdir}")
        print(f"  max-mode load generator: {wrk_version(wrk) if wrk else 'python asyncio'}; "
              "rate-mode load generator: python asyncio open loop")
        print("  endpoints: " + "; ".join(f"{e.title} POST {e.path}" for e in endpoints))
        plan: list[tuple[str, str, str | None]] = [("relay", "wsgi:app", db_url)]
        if args.nodb:
            plan.append(("nodb", "bench.ingress:nodb_app", None))
        if args.baseline:
            plan.append(("baseline", "bench.ingress:trivial_app", None))
        for name, app, url in plan:
            server = Server(name, app, args.workers, args.threads, env, workdir / f"gunicorn-{name}.log")
            servers.append(server)
            server.wait_ready()
            phases += measure(name, server, endpoints, args, wrk, url, workdir, loadgens, phase_no)
            server.stop()
            if server.proc.returncode not in (0, -signal.SIGTERM):
                print(f"  note: {name} gunicorn exited with {server.proc.returncode}")
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    met = print_summary(phases, args, loadgens)
    if not all(p.clean for p in phases if p.target == "relay"):
        return 1
    if args.require_targets and not met:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
