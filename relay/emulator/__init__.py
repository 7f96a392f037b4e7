"""Local Bitrix24 emulator: portals served over real HTTP that speak the REST protocol.

Typical use in a test::

    from relay.emulator import EmulatedPortal, default_source_config

    with EmulatedPortal(default_source_config()) as src:
        deal_id = src.add_deal({"TITLE": "Router", "CATEGORY_ID": 1})
        requests.post(src.webhook_url + "crm.deal.get.json", json={"id": deal_id})
        src.inject("lost_reply", method="crm.deal.add")

Hosting a local application (:mod:`relay.emulator.app`)::

        src.install_app("http://127.0.0.1:8000/b24/partner", "http://127.0.0.1:8000/b24/install")
        token = src.app_tokens()["access_token"]
        requests.post(src.app_rest_url + "event.bind", json={"auth": token, "event": "ONCRMDEALUPDATE",
                                                             "event_type": "offline"})
        src.expire_tokens()          # next call: 401 expired_token; refresh at src.oauth_url + "oauth/token/"
        src.run_robot("b24relay_send", deal_id, {"funnel": "3"})

Protocol facts: ``/work/shared/docs/bitrix24-protocol.md`` (doc paths cited in each module).
"""

from __future__ import annotations

from relay.emulator.appstate import Caller
from relay.emulator.config import (
    DEFAULT_STAGES,
    PortalConfig,
    default_source_config,
    default_target_config,
)
from relay.emulator.core import EmuError, Reply
from relay.emulator.faults import KINDS as FAULT_KINDS
from relay.emulator.faults import Fault
from relay.emulator.outgoing import Binding
from relay.emulator.pipeline import Outcome, RequestRecord
from relay.emulator.portal import Portal
from relay.emulator.robots import RobotRun
from relay.emulator.sender import (
    app_robot_payload,
    event_payload,
    robot_payload,
    send_app_robot,
    send_event,
    send_robot,
)
from relay.emulator.server import EmulatedPortal

__all__ = [
    "DEFAULT_STAGES",
    "FAULT_KINDS",
    "Binding",
    "Caller",
    "EmuError",
    "EmulatedPortal",
    "Fault",
    "Outcome",
    "Portal",
    "PortalConfig",
    "Reply",
    "RequestRecord",
    "RobotRun",
    "app_robot_payload",
    "default_source_config",
    "default_target_config",
    "event_payload",
    "robot_payload",
    "send_app_robot",
    "send_event",
    "send_robot",
    "start_default_pair",
]


def start_default_pair(*, source_port: int = 0, target_port: int = 0,
                       **overrides: object) -> tuple[EmulatedPortal, EmulatedPortal]:
    """Start the default source and target portals (``overrides`` apply to both configs)."""
    source = EmulatedPortal(default_source_config(**overrides), port=source_port).start()
    try:
        target = EmulatedPortal(default_target_config(**overrides), port=target_port).start()
    except BaseException:
        source.stop()
        raise
    return source, target
