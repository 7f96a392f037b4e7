"""Integrator's page and /metrics with a big history: do they answer within 200 ms with 100,000 jobs?

Not part of the test suite.  Run from the repository root::

    .venv/bin/python bench/cockpit.py                         # 100,000 jobs in SQLite
    .venv/bin/python bench/cockpit.py --jobs 300000 --requests 50
    RELAY_BENCH_POSTGRES_URL=postgresql+psycopg://relay@127.0.0.1:55432/postgres .venv/bin/python bench/cockpit.py

Method: a temporary ``relay.yaml`` (one target, two partner sources, one 1C base; webhook URLs point
at a port where nothing listens — nothing is sent) and a database created by :class:`relay.store.Store`
(so migrations and indexes are the relay's own) filled with ``--jobs`` jobs spread over the last 72
hours: 80 % done sync jobs with a target id, 4 % dead with a reason, 6 % skipped, 2 % pending, the rest
notify jobs, plus 5,000 links and a stored mapping-check result.  The relay's Flask app runs under
gunicorn (``gthread``, 1 worker, 4 threads, as deployed), the benchmark logs in through the form like
a browser, then asks each page ``--requests`` times one after the other, after 3 warm-up requests.
It prints median, 95th percentile and maximum per page, and the ratio of the 95th percentile to the
200 ms budget (below 1.0 is within budget).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relay.store import Store  # noqa: E402
from relay.store.schema import jobs, links  # noqa: E402

BUDGET = 0.200
ADMIN = "bench-admin-token-0123456789abcdef"
PAGES = ("/cockpit/", "/cockpit/checks/partner", "/metrics", "/healthz")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(folder: Path) -> Path:
    (folder / "mappings").mkdir()
    shutil.copy(ROOT / "config/mappings/partner.yaml", folder / "mappings/partner.yaml")
    shutil.copy(ROOT / "config/mappings/1c.example.yaml", folder / "mappings/1c.yaml")
    dead = f"http://127.0.0.1:{free_port()}/rest/1/benchsecret0000/"
    path = folder / "relay.yaml"
    path.write_text(f"""
target: {{webhook_url: "{dead}"}}
sources:
  - {{id: partner, webhook_url: "{dead}", application_token: bench-app-token-0123456789, mapping: mappings/partner.yaml,
     domain: partner.bitrix24.test}}
  - {{id: partner2, webhook_url: "{dead}", robot_key: bench-robot-key-0123456789, mapping: mappings/partner.yaml}}
onec:
  - {{id: main, token: bench-1c-token-0123456789, mapping: mappings/1c.yaml}}
""")
    return path


def fill(url: str, count: int) -> None:
    store = Store(url)
    now = time.time()
    rng = random.Random(7)
    rows = []
    for n in range(count):
        roll = rng.random()
        source = rng.choice(("partner", "partner2", "main"))
        record = str(10000 + n) if source != "main" else f"outgoing:0000-{n:06d}:2026"
        status, kind = ("done", "sync") if roll < 0.80 else ("dead", "sync") if roll < 0.84 else \
            ("skipped", "sync") if roll < 0.90 else ("pending", "sync") if roll < 0.92 else ("done", "notify")
        created = now - rng.random() * 72 * 3600
        rows.append({
            "kind": kind, "source_id": source, "deal_id": record, "status": status, "attempts": 1, "events": 1,
            "trigger": "ONCRMDEALUPDATE", "payload": "{}", "outcome": "created" if status == "done" else None,
            "target_deal_id": str(500 + n) if status == "done" else None,
            "last_error": "crm.deal.add: Required fields are not filled: Responsible person" if status == "dead"
            else None, "available_at": created, "created_at": created, "updated_at": created + rng.random() * 30})
    with store.engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(insert(jobs), rows[start:start + 5000])
        conn.execute(insert(links), [{"source_id": "partner", "entity": "deal", "deal_id": str(10000 + n),
                                      "state": "linked", "target_deal_id": str(500 + n), "created_at": now,
                                      "updated_at": now} for n in range(5000)])
    store.save_check("partner", {"source": "partner", "file": "mappings/partner.yaml", "checked_at": now,
                                 "error": "", "findings": [{"file": "mappings/partner.yaml", "line": 14,
                                                            "key": "fields.STAGE_ID.map", "message": "m",
                                                            "suggestion": "s", "fixable": False}]})
    store.close()


def measure(base: str, path: str, count: int, session: requests.Session) -> list[float]:
    times = []
    for n in range(count + 3):
        start = time.perf_counter()
        r = session.get(base + path, timeout=30)
        took = time.perf_counter() - start
        if r.status_code != 200:
            raise SystemExit(f"{path}: HTTP {r.status_code}: {r.text[:200]}")
        if n >= 3:
            times.append(took)
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=30)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="b24relay-cockpit-"))
    url = os.environ.get("RELAY_BENCH_POSTGRES_URL") or f"sqlite:///{tmp}/relay.db"
    config = write_config(tmp)
    if url.startswith("postgresql"):
        from sqlalchemy import create_engine, text

        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS jobs, links, sweeps, portals, health, mapping_checks, "
                              "quiet_alerts, alembic_version CASCADE"))
        engine.dispose()
    print(f"filling {args.jobs:,} jobs into {url.split('@')[-1]} ...", flush=True)
    t0 = time.perf_counter()
    fill(url, args.jobs)
    print(f"  filled in {time.perf_counter() - t0:.1f} s", flush=True)
    port = free_port()
    env = {**os.environ, "RELAY_CONFIG": str(config), "RELAY_DATABASE_URL": url, "RELAY_ADMIN_TOKEN": ADMIN,
           "RELAY_LOG_LEVEL": "WARNING"}
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    proc = subprocess.Popen([gunicorn, "--worker-class", "gthread", "--workers", "1", "--threads", "4",
                             "--bind", f"127.0.0.1:{port}", "wsgi:app"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("gunicorn did not start: " + (proc.stderr.read().decode()[-2000:] if proc.stderr
                                                               else ""))
            time.sleep(0.2)
        session = requests.Session()
        r = session.post(base + "/cockpit/login", data={"token": ADMIN}, timeout=10)
        if r.status_code != 200 or "Sources" not in r.text:
            raise SystemExit(f"login failed: HTTP {r.status_code}")
        print(f"{'page':28} {'median':>9} {'p95':>9} {'max':>9}  p95/200ms")
        results = {}
        for path in PAGES:
            times = sorted(measure(base, path, args.requests, session))
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            results[path] = {"median_ms": statistics.median(times) * 1000, "p95_ms": p95 * 1000,
                             "max_ms": times[-1] * 1000, "ratio": p95 / BUDGET}
            print(f"{path:28} {statistics.median(times) * 1000:7.1f}ms {p95 * 1000:7.1f}ms "
                  f"{times[-1] * 1000:7.1f}ms  {p95 / BUDGET:.2f}")
        session.close()
        print(json.dumps({"jobs": args.jobs, "database": url.split(":")[0], "pages": results}))
        return 0 if all(r["ratio"] < 1 for r in results.values()) else 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
