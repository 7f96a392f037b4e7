"""Throughput under Bitrix24's rate limit: the relay against the naive baseline and the limit.

Run from the repository root::

    .venv/bin/python bench/throughput.py                 # 1,000 deals of 50 companies and 100 contacts,
                                                         # 2 rows each, 2 req/s, burst 50
    .venv/bin/python bench/throughput.py --rate 20       # time scaled down 10x for a quick run
    .venv/bin/python bench/throughput.py --companies 0        # deals only (no contacts either, unless --contacts N)

What it does, for the relay (``relay serve`` in its own process, as deployed) and then for THE BASELINE
(``bench/baseline.py``: the seed's
handler.php plan, 6 sequential calls per event, no queue/retries/batching/pacing), each on a fresh
pair of emulated portals with the same limit enforced (``--rate`` per second, ``--burst``):

1. (the relay is started first and has run its start-up recovery sweep) ``--companies`` companies
   (``TITLE``, one ``PHONE``, one ``EMAIL``, a requisite with ``RQ_INN``) and ``--contacts`` contacts
   (``NAME``, ``LAST_NAME``, ``PHONE``, ``EMAIL``) are set up on the source; then N deals with
   ``--rows`` product rows each — deal i of company i mod C, bound to one contact (even i) or two (odd
   i) taken round robin — are put into a trigger stage at once;
2. one ``ONCRMDEALUPDATE`` event per deal is fired at the handler by ``--senders`` threads (the
   portal's queue server);
3. the clock runs until every deal is complete — or nothing changes for ``--idle`` seconds (the
   baseline loses deals: Bitrix24 never re-sends an event).

A deal is **complete** when the target has it (by its link stamp) with its rows, the source deal has
its comment and its responsible user the notification, and — with clients, for the relay — the target
deal's ``COMPANY_ID`` is a target company stamped with the source company (``ORIGINATOR_ID``
``b24relay:<prefix>``, ``ORIGIN_ID`` = source id, as for deals with ``link_field: ORIGIN_ID``) and its
bound contacts are exactly the stamped copies of the source deal's contacts.  The relay's mapping is
``config/mappings/partner.yaml`` plus ``company:``/``contacts:`` sections (:data:`CLIENT_SECTIONS`);
a relay that refuses them at start-up is run with the deal mapping alone, and its clients count as
missing.  The baseline copies deals only: its deals count without clients, so ``relay/baseline``
compares deals per minute either way.

It prints, for both: wall time, deals relayed completely, deals per minute, HTTP requests per relayed
deal on each portal, 503s received, duplicate and missing deals; with clients, the stamped companies
and contacts on the target (found, duplicates, missing) and the deals lacking their company or
contacts; then the ratios.

**The limit** is the best time any relay could reach at that rate.  A ``batch`` carries at most 50
commands (``settings/how-to-call-rest-api/batch.md``).  C and K are the companies and contacts the N
deals refer to (with clients off, 0).  The formula counts exactly these commands:

* source, reading: ``crm.deal.list`` filtered by ``@ID``, 50 deals a command (a page): ceil(N/50);
  ``crm.item.productrow.list``, 25 deals a command (2 rows each fit a page): ceil(N/25); with
  contacts, the deals' contact ids — ``crm.item.list`` ``entityTypeId`` 2 filtered by ``@id`` selecting
  ``contactIds``, 50 a command: ceil(N/50); with companies, ``crm.company.list`` by ``@ID``: ceil(C/50)
  and their requisites, ``crm.requisite.list`` by ``ENTITY_TYPE_ID`` 4 and ``@ENTITY_ID`` (one
  requisite a company, 50 a page): ceil(C/50); with contacts, ``crm.contact.list`` by ``@ID``:
  ceil(K/50).  Together ``reads``;
* source, reporting back: a comment and a notification per deal: 2N;
* target, look-ups by stamp, 25 stamps a command (``crm.deal.list`` / ``crm.company.list`` /
  ``crm.contact.list`` filtered by the stamp): ceil(N/25) + ceil(C/25) + ceil(K/25).  Together ``finds``;
* target, writes: per deal 2 (the deal — ``COMPANY_ID`` and ``CONTACT_IDS`` included — and its rows),
  per company 2 (``crm.company.add`` + ``crm.requisite.add``), per contact 1 (``crm.contact.add``):
  2N + 2C + K.

Not counted: the other match rules (``{requisite: RQ_INN}``, ``phone``, ``email``, ``title``: on the
empty target they find nothing, and a relay that asks pays for it), retries, the start-up sweep, and
the order the commands depend on (clients are read after the deals naming them and created before
the deals linking them; ``$result[…]`` references allow both within one batch) — so this is a lower
bound.  The source needs at least ``R_s = ceil(reads/50) + ceil(2N/50)`` requests and the target
``R_t = ceil(finds/50) + ceil((2N + 2C + K)/50)``.  A bucket that starts empty admits ``B + r·t``
requests by time ``t``, hence::

    T_limit = max over portals p of  max(0, (R_p − B) / r)

(N=1000, C=50, K=100 at 2/s with burst 50: reads = 84, R_s = 2 + 40 = 42; finds = 46, R_t = 1 + 44 = 45;
both within the burst, so T_limit = 0 and only the relay's own processing counts; N=5000 with the same
clients: R_s = 9 + 200 = 209, R_t = 5 + 204 = 209, T_limit = 79.5 s; deals only, N=5000: R_s = 206,
R_t = 204, T_limit = 78 s).  ``relay/limit`` is ``T_limit / T_relay`` (1.0 = as fast as possible);
``relay/baseline`` is the ratio of fully relayed deals per minute.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.baseline import run_baseline  # noqa: E402
from relay.emulator import EmulatedPortal, default_source_config, default_target_config  # noqa: E402
from relay.redact import configure_logging  # noqa: E402

TOKEN = "bench-application-token-0123456789"
SOURCE_ID = "partner"
#: the stamp on records the relay creates: ``b24relay:<link prefix>`` (the source id: no member_id pinned)
ORIGINATOR = f"b24relay:{SOURCE_ID}"
#: the mapping sections that relay a deal's clients (requisite preset 1: "Organization", holds RQ_INN)
CLIENT_SECTIONS = {
    "company": """
company:
  fields: {TITLE: TITLE, PHONE: PHONE, EMAIL: EMAIL}
  match: [stamp, {requisite: RQ_INN}, phone, email, title]
  on_match: link
  requisite: {preset_id: 1, fields: [RQ_INN]}
""",
    "contacts": """
contacts:
  fields: {NAME: NAME, LAST_NAME: LAST_NAME, PHONE: PHONE, EMAIL: EMAIL}
  match: [stamp, phone, email]
""",
}


@dataclass
class Clients:
    """The source's clients and which deal refers to which (source ids; empty when disabled)."""

    companies: list[int] = field(default_factory=list)
    contacts: list[int] = field(default_factory=list)
    company_of: dict[int, int] = field(default_factory=dict)  # deal -> company
    contacts_of: dict[int, list[int]] = field(default_factory=dict)  # deal -> contacts


def contacts_of_deal(i: int, contacts: int) -> int:
    """How many contacts deal number ``i`` is bound to: one (even i) or two (odd i)."""
    return min(1 + i % 2, contacts)


def clients_used(n: int, companies: int, contacts: int) -> tuple[int, int]:
    """(C, K) of the formula: the companies and contacts N seeded deals refer to."""
    bindings = sum(contacts_of_deal(i, contacts) for i in range(n))
    return min(companies, n), min(contacts, bindings)


@dataclass
class ClientTally:
    """Stamped companies or contacts on the target: found per source id, duplicates, missing."""

    expected: int
    found: int
    duplicates: int
    missing: int


@dataclass
class Run:
    """What one contender achieved."""

    name: str
    wall: float
    deals: int
    complete: int
    source_requests: int
    target_requests: int
    source_503: int
    target_503: int
    duplicates: int
    companies: ClientTally | None = None
    contacts: ClientTally | None = None
    without_company: int = 0  # relayed deals whose COMPANY_ID is not the source company's copy
    without_contacts: int = 0  # relayed deals whose bound contacts are not the source contacts' copies

    @property
    def per_minute(self) -> float:
        return self.complete / self.wall * 60 if self.wall else 0.0

    @property
    def client_duplicates(self) -> int:
        return sum(t.duplicates for t in (self.companies, self.contacts) if t is not None)


def portals(rate: float, burst: int) -> tuple[EmulatedPortal, EmulatedPortal]:
    """A fresh emulated source/target pair enforcing the limit."""
    source = EmulatedPortal(default_source_config(rate=rate, burst=burst, application_token=TOKEN)).start()
    target = EmulatedPortal(default_target_config(rate=rate, burst=burst)).start()
    return source, target


def seed_clients(source: EmulatedPortal, companies: int, contacts: int) -> Clients:
    """Companies (title, phone, e-mail, requisite with RQ_INN) and contacts on the source (not counted)."""
    out = Clients()
    for i in range(companies):
        company_id = source.add_company({
            "TITLE": f"Bench company {i}", "PHONE": [{"VALUE": f"+7 495 {1000000 + i:07d}", "VALUE_TYPE": "WORK"}],
            "EMAIL": [{"VALUE": f"company{i}@bench.test", "VALUE_TYPE": "WORK"}]})
        source.call("crm.requisite.add", {"fields": {  # preset 1 "Organization" holds RQ_INN
            "ENTITY_TYPE_ID": 4, "ENTITY_ID": company_id, "PRESET_ID": 1, "NAME": f"Bench company {i}",
            "RQ_INN": f"77{i:08d}"}})
        out.companies.append(company_id)
    for i in range(contacts):
        out.contacts.append(source.add_contact({
            "NAME": f"Name{i}", "LAST_NAME": f"Bench{i}",
            "PHONE": [{"VALUE": f"+7 916 {2000000 + i:07d}", "VALUE_TYPE": "MOBILE"}],
            "EMAIL": [{"VALUE": f"contact{i}@bench.test", "VALUE_TYPE": "WORK"}]}))
    return out


def seed(source: EmulatedPortal, n: int, rows: int, companies: int = 0, contacts: int = 0) -> tuple[list[int], Clients]:
    """Clients, then N deals in a trigger stage, each with ``rows`` product rows, its company and one or
    two contacts (round robin); seeding is not counted as requests."""
    clients = seed_clients(source, companies, contacts)
    ids = []
    turn = 0
    for i in range(n):
        deal_rows = [{"PRODUCT_ID": 15 if r == 0 else 0, "PRODUCT_NAME": f"Item {r}", "PRICE": 100.0 + r,
                      "QUANTITY": 1 + r} for r in range(rows)]
        fields = {"TITLE": f"Bench deal {i}", "STAGE_ID": "C1:PREPARATION", "CATEGORY_ID": "1",
                  "ASSIGNED_BY_ID": "1", "CURRENCY_ID": "RUB", "UF_CRM_1700000000": "79"}
        company = clients.companies[i % len(clients.companies)] if clients.companies else None
        if company is not None:
            fields["COMPANY_ID"] = str(company)
        deal_id = source.add_deal(fields, rows=deal_rows)
        ids.append(deal_id)
        if company is not None:
            clients.company_of[deal_id] = company
        if clients.contacts:  # crm.deal.contact.items.set, in-process: unlogged, not rate-limited
            count = contacts_of_deal(i, len(clients.contacts))
            bound = [clients.contacts[(turn + k) % len(clients.contacts)] for k in range(count)]
            turn += count
            source.call("crm.deal.contact.items.set", {"id": deal_id, "items": [{"CONTACT_ID": c} for c in bound]})
            clients.contacts_of[deal_id] = bound
    return ids, clients


def stamped(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Target ids (oldest first) of the records the relay created, per source id (``ORIGIN_ID``)."""
    out: dict[str, list[str]] = {}
    for record in records:
        if record.get("ORIGINATOR_ID") == ORIGINATOR and record.get("ORIGIN_ID"):
            out.setdefault(str(record["ORIGIN_ID"]), []).append(str(record["ID"]))
    return out


def client_tally(copies: dict[str, list[str]], expected: set[int]) -> ClientTally:
    """Found, duplicate and missing copies of the ``expected`` source records."""
    return ClientTally(len(expected), sum(1 for e in expected if str(e) in copies),
                       sum(len(ids) - 1 for ids in copies.values() if len(ids) > 1),
                       sum(1 for e in expected if str(e) not in copies))


def clients_linked(target: EmulatedPortal, deal: dict[str, Any], source_id: int, clients: Clients,
                   companies: dict[str, list[str]], origin_of_contact: dict[str, str]) -> tuple[bool, bool]:
    """(company ok, contacts ok) of a target deal: its ``COMPANY_ID`` is a copy of the source deal's
    company, its bound contacts are copies of exactly the source deal's contacts (any copy counts)."""
    company_ok = source_id not in clients.company_of or \
        str(deal.get("COMPANY_ID") or "") in companies.get(str(clients.company_of[source_id]), [])
    contacts_ok = source_id not in clients.contacts_of or \
        sorted(origin_of_contact.get(str(b["CONTACT_ID"]), "?") for b in target.deal_contacts(int(deal["ID"]))) \
        == sorted(str(c) for c in clients.contacts_of[source_id])
    return company_ok, contacts_ok


def tally(source: EmulatedPortal, target: EmulatedPortal, ids: list[int], rows: int,
          clients: Clients | None = None) -> dict[str, Any]:
    """What the portals' own state shows, as Run fields: ``complete`` deals, ``duplicates`` (target
    deals), and with ``clients`` (the relay's run) the company and contact checks."""
    deals = target.deals()
    stamps = Counter(str(d.get("UF_CRM_SOURCE_DEAL") or "").rsplit(":", 1)[-1] for d in deals)
    by_stamp = {str(d.get("UF_CRM_SOURCE_DEAL") or "").rsplit(":", 1)[-1]: d for d in deals}
    commented = {int(c["ENTITY_ID"]) for c in source.comments()}
    notified = Counter(str(n.get("MESSAGE", "")) for n in source.notifications())
    plan = clients or Clients()
    companies, contacts = stamped(target.companies()), stamped(target.contacts())
    origin_of_contact = {t: s for s, copies in contacts.items() for t in copies}
    complete = without_company = without_contacts = 0
    for deal_id in ids:
        deal = by_stamp.get(str(deal_id))
        if deal is None or deal_id not in commented or len(target.rows(int(deal["ID"]))) != rows:
            continue
        if not any(f"#{deal_id}" in msg for msg in notified):
            continue
        company_ok, contacts_ok = clients_linked(target, deal, deal_id, plan, companies, origin_of_contact)
        without_company += not company_ok
        without_contacts += not contacts_ok
        complete += company_ok and contacts_ok
    out: dict[str, Any] = {"complete": complete, "duplicates": sum(n - 1 for n in stamps.values() if n > 1)}
    if plan.company_of:
        out.update(companies=client_tally(companies, set(plan.company_of.values())),
                   without_company=without_company)
    if plan.contacts_of:
        out.update(contacts=client_tally(contacts, {c for cs in plan.contacts_of.values() for c in cs}),
                   without_contacts=without_contacts)
    return out


def progress(source: EmulatedPortal, target: EmulatedPortal, clients: Clients | None) -> tuple[int, ...]:
    """What the relay has done so far, in counts that only grow: target deals, comments, notifications;
    with clients also target companies, contacts, deals with a company and deal-contact bindings."""
    deals = target.deals()
    now = [len(deals), len(source.comments()), len(source.notifications())]
    if clients is not None and clients.company_of:
        now += [len(target.companies()), sum(1 for d in deals if d.get("COMPANY_ID"))]
    if clients is not None and clients.contacts_of:
        now += [len(target.contacts()), sum(len(target.deal_contacts(int(d["ID"]))) for d in deals)]
    return tuple(now)


def expected_progress(n: int, clients: Clients | None) -> tuple[int, ...]:
    """:func:`progress` once every deal is complete."""
    goal = [n, n, n]
    if clients is not None and clients.company_of:
        goal += [len(set(clients.company_of.values())), n]
    if clients is not None and clients.contacts_of:
        goal += [len({c for cs in clients.contacts_of.values() for c in cs}),
                 sum(len(cs) for cs in clients.contacts_of.values())]
    return tuple(goal)


def wait_done(probe: Callable[[], tuple[int, ...]], goal: tuple[int, ...], idle: float, limit: float,
              start: float) -> float:
    """Seconds from ``start`` until ``probe()`` reaches ``goal`` in every count (or the last progress
    before nothing changed for ``idle`` seconds)."""
    last_change = time.monotonic()
    last: tuple[int, ...] = ()
    while True:
        now_state = probe()
        now = time.monotonic()
        if now_state != last:
            last, last_change = now_state, now
        if all(have >= want for have, want in zip(now_state, goal, strict=True)):
            return now - start
        if now - last_change > idle or now - start > limit:
            return last_change - start
        time.sleep(0.05)


def mapping_text(companies: bool, contacts: bool) -> str:
    """The partner mapping plus the client sections the seeded deals need."""
    text = (ROOT / "config/mappings/partner.yaml").read_text()
    if companies:
        text += CLIENT_SECTIONS["company"]
    if contacts:
        text += CLIENT_SECTIONS["contacts"]
    return text


def start_relay(tmp: Path, args: argparse.Namespace, target: EmulatedPortal, source: EmulatedPortal,
                mapping: str) -> tuple[subprocess.Popen[bytes] | None, int, str]:
    """``relay serve`` with ``mapping``, healthy: (process, port, "") — or (None, 0, its stderr) when it
    exits during start-up (e.g. a mapping it does not accept)."""
    (tmp / "mappings").mkdir(exist_ok=True)
    (tmp / "mappings/partner.yaml").write_text(mapping)
    cfg = tmp / "relay.yaml"
    cfg.write_text(f"""
target: {{webhook_url: "{target.webhook_url}", limits: {{rate: {args.rate}, burst: {args.burst}}}}}
sources:
  - {{id: {SOURCE_ID}, webhook_url: "{source.webhook_url}", application_token: "{TOKEN}",
     mapping: mappings/partner.yaml, limits: {{rate: {args.rate}, burst: {args.burst}}}}}
worker: {{threads: {args.workers}, batch_size: {args.batch}, linger: {args.linger}}}
""")
    port = free_port()
    env = {**os.environ, "RELAY_CONFIG": str(cfg), "RELAY_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
           "RELAY_LOG_LEVEL": "WARNING"}
    with (tmp / "relay.err").open("wb") as err:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("relay")), "serve", "--port", str(port)],
                                env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
    except RuntimeError as exc:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            raise
        return None, 0, f"{exc}: " + (tmp / "relay.err").read_text(errors="replace").strip()[-600:]
    return proc, port, ""


def relay_run(args: argparse.Namespace) -> Run:
    """The relay as deployed: ``relay serve`` (gunicorn + in-process worker, SQLite) in its own process."""
    source, target = portals(args.rate, args.burst)
    proc = None
    try:
        with tempfile.TemporaryDirectory(prefix="b24relay-bench-") as tmp:
            sections = (args.deals > 0 and args.companies > 0, args.deals > 0 and args.contacts > 0)
            proc, port, refused = start_relay(Path(tmp), args, target, source, mapping_text(*sections))
            if proc is None and any(sections):
                why = refused.replace("\n", "\n    ")
                print(f"  warning: the relay refused the company/contacts mapping sections; running it with the "
                      f"deal mapping alone (its clients count as missing):\n    {why}")
                proc, port, refused = start_relay(Path(tmp), args, target, source, mapping_text(False, False))
            if proc is None:
                raise RuntimeError(refused)
            handler = f"http://127.0.0.1:{port}/b24/{SOURCE_ID}"
            time.sleep(3)  # the relay runs its start-up recovery sweep (an empty portal: one request)
            ids, source_clients = seed(source, args.deals, args.rows, args.companies, args.contacts)
            source.reset_log()  # then the manager moves N deals at once
            target.reset_log()
            started = time.monotonic()
            with ThreadPoolExecutor(args.senders) as pool:
                answers = Counter(pool.map(lambda d: source.send_event(handler, "ONCRMDEALUPDATE", d, TOKEN)[0], ids))
            wall = wait_done(lambda: progress(source, target, source_clients),
                             expected_progress(args.deals, source_clients), args.idle, args.timeout, started)
            if answers.get(200, 0) != args.deals:
                print(f"  warning: handler answers {dict(answers)}")
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        if args.breakdown:
            for name, portal in (("source", source), ("target", target)):
                kinds = Counter(" + ".join(sorted(set(r.inner))) if r.inner else r.method for r in portal.requests)
                print(f"  {name} requests by content: " + "; ".join(f"{n}x {k}" for k, n in kinds.most_common()))
        return Run("relay", wall, args.deals, source_requests=source.count_requests(),
                   target_requests=target.count_requests(), source_503=source.count_requests(status=503),
                   target_503=target.count_requests(status=503),
                   **tally(source, target, ids, args.rows, source_clients))
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        source.stop()
        target.stop()


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until the relay answers its health check."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("relay serve exited during start-up")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError("relay serve did not become healthy")


def baseline_run(args: argparse.Namespace) -> Run:
    """THE BASELINE: bench/baseline.py under the same limits, on the same source (clients included);
    it copies deals only, so its deals count without clients."""
    source, target = portals(args.rate, args.burst)
    try:
        ids, _clients = seed(source, args.deals, args.rows, args.companies, args.contacts)
        source.reset_log()
        target.reset_log()
        result: dict[str, Any] = run_baseline(source, target, ids, concurrency=args.senders,
                                              timeout=args.timeout, application_token=TOKEN)
        return Run("baseline", float(result["wall_seconds"]), args.deals, source_requests=source.count_requests(),
                   target_requests=target.count_requests(), source_503=source.count_requests(status=503),
                   target_503=target.count_requests(status=503), **tally(source, target, ids, args.rows))
    finally:
        source.stop()
        target.stop()


def requests_needed(n: int, companies: int = 0, contacts: int = 0) -> tuple[int, int]:
    """(R_s, R_t) of the module docstring for N deals referring to C companies and K contacts."""
    reads = math.ceil(n / 50) + math.ceil(n / 25)  # crm.deal.list, crm.item.productrow.list
    reads += math.ceil(n / 50) if contacts else 0  # crm.item.list selecting contactIds
    reads += 2 * math.ceil(companies / 50) + math.ceil(contacts / 50)  # company, requisite, contact lists
    finds = math.ceil(n / 25) + math.ceil(companies / 25) + math.ceil(contacts / 25)
    writes = 2 * n + 2 * companies + contacts
    return math.ceil(reads / 50) + math.ceil(2 * n / 50), math.ceil(finds / 50) + math.ceil(writes / 50)


def limit_seconds(n: int, rate: float, burst: int, companies: int = 0, contacts: int = 0) -> float:
    """T_limit of the module docstring."""
    source, target = requests_needed(n, companies, contacts)
    return max(0.0, (source - burst) / rate, (target - burst) / rate)


def per_deal(requests_made: int, deals: int) -> str:
    """Requests per complete deal, or n/a when none is complete."""
    return f"{requests_made / deals:.3f}" if deals else "n/a"


def report(runs: list[Run], args: argparse.Namespace, used: tuple[int, int]) -> None:
    """Print the table and the ratios; ``used`` = (C, K) of the formula."""
    clients = f" of {used[0]} companies and {used[1]} contacts" if any(used) else ""
    print(f"\n{args.deals} deals{clients} x {args.rows} rows, limit {args.rate}/s burst {args.burst}, "
          f"{args.senders} event senders, {args.workers} relay worker thread(s)")
    head = f"{'':9} {'wall s':>8} {'complete':>9} {'deals/min':>10} {'req/deal src':>13} {'req/deal tgt':>13} " \
           f"{'503 src':>8} {'503 tgt':>8} {'dupes':>6} {'missing':>8}"
    print(head)
    for r in runs:
        print(f"{r.name:9} {r.wall:8.1f} {r.complete:>9} {r.per_minute:10.1f} "
              f"{per_deal(r.source_requests, r.complete):>13} {per_deal(r.target_requests, r.complete):>13} "
              f"{r.source_503:>8} {r.target_503:>8} {r.duplicates:>6} {r.deals - r.complete:>8}")
    if any(used):
        print(f"\nclients on the target (stamped {ORIGINATOR}, ORIGIN_ID = source id):")
        print(f"{'':9} {'kind':>9} {'expected':>9} {'found':>7} {'dupes':>6} {'missing':>8} {'deals lacking them':>19}")
        for r in runs:
            for kind, t, lacking in (("companies", r.companies, r.without_company),
                                     ("contacts", r.contacts, r.without_contacts)):
                if t is not None:
                    print(f"{r.name:9} {kind:>9} {t.expected:>9} {t.found:>7} {t.duplicates:>6} {t.missing:>8} "
                          f"{lacking:>19}")
            if r.companies is None and r.contacts is None:
                print(f"{r.name:9} not relayed (copies deals only; its deals count without clients)")
    relay = next(r for r in runs if r.name == "relay")
    r_s, r_t = requests_needed(args.deals, *used)
    t_limit = limit_seconds(args.deals, args.rate, args.burst, *used)
    print(f"\nlimit: T_limit = max_p (R_p - B)/r = {t_limit:.1f} s (R_source = {r_s}, R_target = {r_t} requests; "
          f"the relay made {relay.source_requests} and {relay.target_requests})")
    if t_limit:
        print(f"relay/limit    = T_limit / T_relay = {t_limit / relay.wall:.2f}   (target >= 0.90)")
    else:
        print(f"every request fits the portals' burst: T_limit = 0, the relay took {relay.wall:.1f} s "
              "(its own processing and the event deliveries)")
    base = next((r for r in runs if r.name == "baseline"), None)
    if base is not None:
        ratio = relay.per_minute / base.per_minute if base.per_minute else math.inf
        print(f"relay/baseline = {ratio:.1f}x deals per minute   (target >= 20x)")
    print(f"requests per relayed deal: source {per_deal(relay.source_requests, relay.complete)}, "
          f"target {per_deal(relay.target_requests, relay.complete)}   (target <= 0.25)")


def main(argv: list[str] | None = None) -> int:
    """Run both contenders and print the comparison."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--deals", type=int, default=1000)
    p.add_argument("--rows", type=int, default=2)
    p.add_argument("--companies", type=int, default=50, help="source companies, deal i has company i mod C "
                   "(default 50; 0: no company section, and no contacts unless --contacts is given: deals only)")
    p.add_argument("--contacts", type=int, default=None, help="source contacts, one or two per deal round robin "
                   "(default 100, 0 with --companies 0; 0: no contacts section)")
    p.add_argument("--rate", type=float, default=2.0, help="portal limit, requests per second (default 2)")
    p.add_argument("--burst", type=int, default=50, help="portal burst (default 50)")
    p.add_argument("--senders", type=int, default=8, help="concurrent event deliveries (default 8)")
    p.add_argument("--workers", type=int, default=1, help="relay worker threads (default 1)")
    p.add_argument("--batch", type=int, default=500, help="relay worker.batch_size (default 500, as the relay)")
    p.add_argument("--linger", type=float, default=0.2, help="relay worker.linger (default 0.2)")
    p.add_argument("--idle", type=float, default=20.0, help="stop when nothing changes this long (s)")
    p.add_argument("--timeout", type=float, default=900.0, help="hard stop per contender (s)")
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--breakdown", action="store_true", help="print the relay's requests by the methods they carry")
    args = p.parse_args(argv)
    if args.contacts is None:
        args.contacts = 100 if args.companies else 0
    if args.companies < 0 or args.contacts < 0:
        p.error("--companies and --contacts must be >= 0")
    configure_logging("WARNING")
    runs = [relay_run(args)]
    if not args.skip_baseline:
        runs.append(baseline_run(args))
    report(runs, args, clients_used(args.deals, args.companies, args.contacts))
    relay = runs[0]
    return 0 if relay.complete == relay.deals and relay.duplicates == 0 and relay.client_duplicates == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
