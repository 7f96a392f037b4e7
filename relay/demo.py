"""``relay demo``: the whole product against a local emulated pair of portals.

Starts the emulator's default *source* and *target* portals, loads ``config/relay.example.yaml``
and ``config/mappings/partner.yaml`` with their URLs, serves the handler on a real HTTP port with an
in-process worker, puts a sample deal into a trigger stage, fires ``ONCRMDEALUPDATE`` at the
handler exactly as Bitrix24 does, and prints the created target deal, its rows and the comment
and notification on the source.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from relay.boot import build
from relay.config import load_config
from relay.emulator import EmulatedPortal, default_source_config, default_target_config
from relay.redact import configure_logging
from relay.settings import environment
from relay.store import Store
from relay.web.app import serve_in_thread

EXAMPLE = Path("config/relay.example.yaml")
SAMPLE_DEAL = {
    "TITLE": "Boiler installation", "STAGE_ID": "C1:PREPARATION", "CATEGORY_ID": "1", "OPPORTUNITY": "1500.00",
    "CURRENCY_ID": "RUB", "COMPANY_ID": "12", "ASSIGNED_BY_ID": "1", "UF_CRM_1700000000": "79",
    "COMMENTS": "Customer asks for delivery on Monday",
}
SAMPLE_ROWS = [
    {"PRODUCT_ID": 15, "PRODUCT_NAME": "Boiler X200", "PRICE": 1200.0, "QUANTITY": 1},
    {"PRODUCT_ID": 0, "PRODUCT_NAME": "Installation", "PRICE": 150.0, "QUANTITY": 2},
]


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _show(title: str, value: Any) -> None:
    print(f"\n== {title}\n{json.dumps(value, ensure_ascii=False, indent=2)}", flush=True)


def run_demo(*, host: str = "127.0.0.1", port: int = 0, keep_serving: bool = False) -> int:
    """Relay one sample deal between emulated portals, print the result; optionally keep serving."""
    configure_logging("WARNING")
    if not EXAMPLE.is_file():
        print(f"{EXAMPLE} not found: run the demo from the b24relay checkout")
        return 2
    token, robot_key = secrets.token_hex(16), secrets.token_hex(16)
    with EmulatedPortal(default_source_config()) as source, EmulatedPortal(default_target_config()) as target, \
            tempfile.TemporaryDirectory(prefix="b24relay-demo-") as tmp:
        env = dict(environment())
        env.update({
            "RELAY_TARGET_WEBHOOK": target.webhook_url, "RELAY_PARTNER_WEBHOOK": source.webhook_url,
            "RELAY_PARTNER_APP_TOKEN": token, "RELAY_PARTNER_ROBOT_KEY": robot_key,
            "RELAY_PARTNER_MEMBER_ID": source.config.member_id, "RELAY_PARTNER_DOMAIN": source.config.domain,
        })
        config = load_config(EXAMPLE, env)
        relay = build(config, Store(f"sqlite:///{tmp}/demo.db"))
        relay.check_target()
        server = serve_in_thread(relay.app(), host, port)
        handler = f"http://{host}:{server.server_port}/b24/partner"
        stop = threading.Event()
        relay.start_workers(1, stop)
        try:
            return _scenario(source, target, handler, token, robot_key, keep_serving)
        finally:
            stop.set()
            relay.wake.set()
            server.shutdown()
            relay.store.close()


def _scenario(source: EmulatedPortal, target: EmulatedPortal, handler: str, token: str, robot_key: str,
              keep_serving: bool) -> int:
    print(f"source portal (emulated): {source.config.domain} at {source.url}")
    print(f"target portal (emulated): {target.config.domain} at {target.url}")
    print(f"relay handler URL:        {handler}")
    _wait(lambda: source.count_requests() > 0, 3)  # the start-up recovery sweep (one request) ...
    source.reset_log()  # ... is not part of the sample deal's cost
    target.reset_log()
    deal_id = source.add_deal(dict(SAMPLE_DEAL), rows=[dict(r) for r in SAMPLE_ROWS])
    print(f"\nsource deal #{deal_id} moved to C1:PREPARATION; the portal calls the handler with ONCRMDEALUPDATE ...")
    status, body = source.send_event(handler, "ONCRMDEALUPDATE", deal_id, token)
    print(f"handler answered {status}: {body.strip()}")
    if not _wait(lambda: source.comments(deal_id) and source.notifications(), 30):
        print("the deal did not arrive within 30 s — see the log above")
        return 1
    created = target.deals()[-1]
    _show("target deal (ESB)", {k: v for k, v in created.items() if v not in (None, "")})
    _show("its product rows", [{k: r.get(k) for k in ("PRODUCT_ID", "PRODUCT_NAME", "PRICE", "QUANTITY")}
                               for r in target.rows(int(created["ID"]))])
    _show("timeline comment on the source deal", source.comments(deal_id)[-1])
    _show("notification to the responsible user", source.notifications()[-1])
    print(f"\nHTTP requests for this deal: source {source.count_requests()} (read; comment + notification), "
          f"target {target.count_requests()} (look-up by the link stamp; create with rows)")
    if not keep_serving:
        return 0
    print(f"\nStill serving (Ctrl-C to stop). Try:\n"
          f"  curl -s -X POST '{source.url}/_emu/deals' -H 'Content-Type: application/json' "
          f"-d '{{\"fields\": {{\"TITLE\": \"Another\", \"STAGE_ID\": \"C1:EXECUTING\", \"CATEGORY_ID\": \"1\"}}}}'\n"
          f"  curl -s -X POST '{handler}?key={robot_key}' "
          f"-d 'document_id[0]=crm&document_id[1]=CCrmDocumentDeal&document_id[2]=DEAL_<id>'\n"
          f"  curl -s '{target.url}/_emu/deals'", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0
