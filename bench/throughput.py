"""Throughput under Bitrix24's rate limit: the relay against the naive baseline and the limit.

Run from the repository root::

    .venv/bin/python bench/throughput.py                 # N=1000 deals at 2 req/s, burst 50 (about 1 min)
    .venv/bin/python bench/throughput.py --rate 20       # time scaled down 10x for a quick run

What it does, for the relay (``relay serve`` in its own process, as deployed) and then for THE BASELINE
(``bench/baseline.py``: the seed's
handler.php plan, 6 sequential calls per event, no queue/retries/batching/pacing), each on a fresh
pair of emulated portals with the same limit enforced (``--rate`` per second, ``--burst``):

1. (the relay is started first and has run its start-up recovery sweep) N deals with ``--rows``
   product rows each are put into a trigger stage at once;
2. one ``ONCRMDEALUPDATE`` event per deal is fired at the handler by ``--senders`` threads (the
   portal's queue server);
3. the clock runs until every deal is on the target with its rows, the source deal has its
   comment and its responsible user the notification — or nothing changes for ``--idle`` seconds
   (the baseline loses deals: Bitrix24 never re-sends an event).

It prints, for both: wall time, deals relayed completely, deals per minute, HTTP requests per relayed
deal on each portal, 503s received, duplicates and missing deals; then the ratios.

**The limit** is the best time any relay could reach at that rate.  A ``batch`` carries at most 50
commands (``settings/how-to-call-rest-api/batch.md``).  Reading deals takes 1 ``crm.deal.list``
command per 50 deals and 1 ``crm.item.productrow.list`` command per 25 deals (2 rows each fit a
page); writing one deal takes 2 commands on the target (deal + rows); reporting back 2 on the source
(comment + notification); a relay that does not trust its own database alone also looks each new
deal up on the target by its stamp (1 command per 25 stamps).  So the source needs at least
``R_s = ceil((ceil(N/50) + ceil(N/25)) / 50) + ceil(2N/50)`` requests and the target
``R_t = ceil(2N/50) + ceil(N/1250)``.  A bucket that starts empty admits ``B + r·t`` requests by
time ``t``, hence::

    T_limit = max over portals p of  max(0, (R_p − B) / r)

(N=1000 at 2/s with burst 50: R_s = 42, R_t = 41, both within the burst, so T_limit = 0 and
only the relay's own processing counts; N=5000: R_s = 206, R_t = 204, T_limit = 78 s).
``relay/limit`` is ``T_limit / T_relay`` (1.0 = as fast as
possible); ``relay/baseline`` is the ratio of fully relayed deals per minute.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.baseline import run_baseline  # noqa: E402
from relay.emulator import EmulatedPortal, default_source_config, default_target_config  # noqa: E402
from relay.redact import configure_logging  # noqa: E402

TOKEN = "bench-application-token-0123456789"


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

    @property
    def per_minute(self) -> float:
        return self.complete / self.wall * 60 if self.wall else 0.0


def portals(rate: float, burst: int) -> tuple[EmulatedPortal, EmulatedPortal]:
    """A fresh emulated source/target pair enforcing the limit."""
    source = EmulatedPortal(default_source_config(rate=rate, burst=burst, application_token=TOKEN)).start()
    target = EmulatedPortal(default_target_config(rate=rate, burst=burst)).start()
    return source, target


def seed(source: EmulatedPortal, n: int, rows: int) -> list[int]:
    """N deals in a trigger stage, each with ``rows`` product rows (not counted as requests)."""
    ids = []
    for i in range(n):
        deal_rows = [{"PRODUCT_ID": 15 if r == 0 else 0, "PRODUCT_NAME": f"Item {r}", "PRICE": 100.0 + r,
                      "QUANTITY": 1 + r} for r in range(rows)]
        ids.append(source.add_deal({"TITLE": f"Bench deal {i}", "STAGE_ID": "C1:PREPARATION", "CATEGORY_ID": "1",
                                    "ASSIGNED_BY_ID": "1", "CURRENCY_ID": "RUB", "UF_CRM_1700000000": "79"},
                                   rows=deal_rows))
    return ids


def tally(source: EmulatedPortal, target: EmulatedPortal, ids: list[int], rows: int) -> tuple[int, int]:
    """(deals relayed completely, duplicate target deals) by the portals' own state."""
    stamps = Counter(str(d.get("UF_CRM_SOURCE_DEAL") or "").rsplit(":", 1)[-1] for d in target.deals())
    by_stamp = {str(d.get("UF_CRM_SOURCE_DEAL") or "").rsplit(":", 1)[-1]: d for d in target.deals()}
    commented = {int(c["ENTITY_ID"]) for c in source.comments()}
    notified = Counter(str(n.get("MESSAGE", "")) for n in source.notifications())
    complete = 0
    for deal_id in ids:
        deal = by_stamp.get(str(deal_id))
        if deal is None or deal_id not in commented or len(target.rows(int(deal["ID"]))) != rows:
            continue
        if any(f"#{deal_id}" in msg for msg in notified):
            complete += 1
    duplicates = sum(n - 1 for n in stamps.values() if n > 1)
    return complete, duplicates


def wait_done(source: EmulatedPortal, target: EmulatedPortal, n: int, idle: float, limit: float,
              start: float) -> float:
    """Seconds from ``start`` until n deals, comments and notifications exist (or the last progress
    before nothing changed for ``idle`` seconds)."""
    last_change = time.monotonic()
    last = (-1, -1, -1)
    while True:
        now_state = (len(target.deals()), len(source.comments()), len(source.notifications()))
        now = time.monotonic()
        if now_state != last:
            last, last_change = now_state, now
        if min(now_state) >= n:
            return now - start
        if now - last_change > idle or now - start > limit:
            return last_change - start
        time.sleep(0.05)


def relay_run(args: argparse.Namespace) -> Run:
    """The relay as deployed: ``relay serve`` (gunicorn + in-process worker, SQLite) in its own process."""
    source, target = portals(args.rate, args.burst)
    proc = None
    try:
        with tempfile.TemporaryDirectory(prefix="b24relay-bench-") as tmp:
            cfg = Path(tmp) / "relay.yaml"
            (Path(tmp) / "mappings").mkdir()
            (Path(tmp) / "mappings/partner.yaml").write_text((ROOT / "config/mappings/partner.yaml").read_text())
            cfg.write_text(f"""
target: {{webhook_url: "{target.webhook_url}", limits: {{rate: {args.rate}, burst: {args.burst}}}}}
sources:
  - {{id: partner, webhook_url: "{source.webhook_url}", application_token: "{TOKEN}",
     mapping: mappings/partner.yaml, limits: {{rate: {args.rate}, burst: {args.burst}}}}}
worker: {{threads: {args.workers}, batch_size: {args.batch}, linger: {args.linger}}}
""")
            port = free_port()
            env = {**os.environ, "RELAY_CONFIG": str(cfg), "RELAY_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                   "RELAY_LOG_LEVEL": "WARNING"}
            proc = subprocess.Popen([str(Path(sys.executable).with_name("relay")), "serve", "--port", str(port)],
                                    env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            handler = f"http://127.0.0.1:{port}/b24/partner"
            wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
            time.sleep(3)  # the relay runs its start-up recovery sweep (an empty portal: one request)
            ids = seed(source, args.deals, args.rows)  # then the manager moves N deals at once
            source.reset_log()
            target.reset_log()
            started = time.monotonic()
            with ThreadPoolExecutor(args.senders) as pool:
                answers = Counter(pool.map(lambda d: source.send_event(handler, "ONCRMDEALUPDATE", d, TOKEN)[0], ids))
            wall = wait_done(source, target, args.deals, args.idle, args.timeout, started)
            if answers.get(200, 0) != args.deals:
                print(f"  warning: handler answers {dict(answers)}")
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        complete, dupes = tally(source, target, ids, args.rows)
        return Run("relay", wall, args.deals, complete, source.count_requests(), target.count_requests(),
                   source.count_requests(status=503), target.count_requests(status=503), dupes)
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
    """THE BASELINE: bench/baseline.py under the same limits."""
    source, target = portals(args.rate, args.burst)
    try:
        ids = seed(source, args.deals, args.rows)
        source.reset_log()
        target.reset_log()
        result: dict[str, Any] = run_baseline(source, target, ids, concurrency=args.senders,
                                              timeout=args.timeout, application_token=TOKEN)
        complete, dupes = tally(source, target, ids, args.rows)
        return Run("baseline", float(result["wall_seconds"]), args.deals, complete, source.count_requests(),
                   target.count_requests(), source.count_requests(status=503), target.count_requests(status=503),
                   dupes)
    finally:
        source.stop()
        target.stop()


def requests_needed(n: int) -> tuple[int, int]:
    """(R_s, R_t) of the module docstring."""
    reads = math.ceil((math.ceil(n / 50) + math.ceil(n / 25)) / 50)
    return reads + math.ceil(2 * n / 50), math.ceil(2 * n / 50) + math.ceil(n / 1250)


def limit_seconds(n: int, rate: float, burst: int) -> float:
    """T_limit of the module docstring."""
    source, target = requests_needed(n)
    return max(0.0, (source - burst) / rate, (target - burst) / rate)


def report(runs: list[Run], args: argparse.Namespace) -> None:
    """Print the table and the ratios."""
    print(f"\n{args.deals} deals x {args.rows} rows, limit {args.rate}/s burst {args.burst}, "
          f"{args.senders} event senders, {args.workers} relay worker thread(s)")
    head = f"{'':9} {'wall s':>8} {'complete':>9} {'deals/min':>10} {'req/deal src':>13} {'req/deal tgt':>13} " \
           f"{'503 src':>8} {'503 tgt':>8} {'dupes':>6} {'missing':>8}"
    print(head)
    for r in runs:
        per = max(r.complete, 1)
        print(f"{r.name:9} {r.wall:8.1f} {r.complete:>9} {r.per_minute:10.1f} {r.source_requests / per:13.3f} "
              f"{r.target_requests / per:13.3f} {r.source_503:>8} {r.target_503:>8} {r.duplicates:>6} "
              f"{r.deals - r.complete:>8}")
    relay = next(r for r in runs if r.name == "relay")
    t_limit = limit_seconds(args.deals, args.rate, args.burst)
    print(f"\nlimit: T_limit = max_p (R_p - B)/r = {t_limit:.1f} s "
          f"(R_source = {requests_needed(args.deals)[0]}, R_target = {requests_needed(args.deals)[1]} requests)")
    if t_limit:
        print(f"relay/limit    = T_limit / T_relay = {t_limit / relay.wall:.2f}   (target >= 0.90)")
    else:
        print(f"every request fits the portals' burst: T_limit = 0, the relay took {relay.wall:.1f} s "
              "(its own processing and the event deliveries)")
    base = next((r for r in runs if r.name == "baseline"), None)
    if base is not None:
        ratio = relay.per_minute / base.per_minute if base.per_minute else math.inf
        print(f"relay/baseline = {ratio:.1f}x deals per minute   (target >= 20x)")
    print(f"requests per relayed deal: source {relay.source_requests / max(relay.complete, 1):.3f}, "
          f"target {relay.target_requests / max(relay.complete, 1):.3f}   (target <= 0.25)")


def main(argv: list[str] | None = None) -> int:
    """Run both contenders and print the comparison."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--deals", type=int, default=1000)
    p.add_argument("--rows", type=int, default=2)
    p.add_argument("--rate", type=float, default=2.0, help="portal limit, requests per second (default 2)")
    p.add_argument("--burst", type=int, default=50, help="portal burst (default 50)")
    p.add_argument("--senders", type=int, default=8, help="concurrent event deliveries (default 8)")
    p.add_argument("--workers", type=int, default=1, help="relay worker threads (default 1)")
    p.add_argument("--batch", type=int, default=200, help="relay worker.batch_size (default 200)")
    p.add_argument("--linger", type=float, default=0.2, help="relay worker.linger (default 0.2)")
    p.add_argument("--idle", type=float, default=20.0, help="stop when nothing changes this long (s)")
    p.add_argument("--timeout", type=float, default=900.0, help="hard stop per contender (s)")
    p.add_argument("--skip-baseline", action="store_true")
    args = p.parse_args(argv)
    configure_logging("WARNING")
    runs = [relay_run(args)]
    if not args.skip_baseline:
        runs.append(baseline_run(args))
    report(runs, args)
    relay = runs[0]
    return 0 if relay.complete == relay.deals and relay.duplicates == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
