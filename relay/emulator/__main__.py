"""``python -m relay.emulator``: run the default source/target portal pair until SIGINT/SIGTERM.

Prints one JSON line with both webhook URLs, e.g.
``{"source": {"webhook_url": ..., "control_url": ..., "domain": ..., "member_id": ...,
"application_token": ...}, "target": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from relay.emulator.config import PortalConfig, default_source_config, default_target_config
from relay.emulator.server import EmulatedPortal


def _load(path: str) -> dict[str, Any]:
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with 'source' and/or 'target'")
    return data


def build_configs(args: argparse.Namespace) -> tuple[PortalConfig, PortalConfig, int, int]:
    """Default configs, overlaid by the config file and then by the command line."""
    data = _load(args.config) if args.config else {}
    ports = {"source": args.source_port, "target": args.target_port}
    configs = []
    for role, factory in (("source", default_source_config), ("target", default_target_config)):
        section = dict(data.get(role) or {})
        port = section.pop("port", None)
        if ports[role] is None:
            ports[role] = int(port or 0)
        cli: dict[str, Any] = {}
        if args.rate is not None:
            cli["rate"] = args.rate
        if args.burst is not None:
            cli["burst"] = args.burst
        if args.no_rate_limit:
            cli["enforce_rate"] = False
        configs.append(PortalConfig.from_dict(cli, factory(**section)) if cli else factory(**section))
    return configs[0], configs[1], int(ports["source"] or 0), int(ports["target"] or 0)


def _describe(portal: EmulatedPortal) -> dict[str, Any]:
    return {
        "webhook_url": portal.webhook_url,
        "control_url": f"{portal.url}/_emu/",
        "domain": portal.config.domain,
        "member_id": portal.config.member_id,
        "application_token": portal.config.application_token,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start both portals, print their URLs, serve until a signal."""
    parser = argparse.ArgumentParser(prog="python -m relay.emulator", description=__doc__)
    parser.add_argument("--config", help="YAML/JSON file with 'source'/'target' PortalConfig overrides")
    parser.add_argument("--source-port", type=int, default=None)
    parser.add_argument("--target-port", type=int, default=None)
    parser.add_argument("--rate", type=float, default=None, help="leaky bucket drain per second")
    parser.add_argument("--burst", type=int, default=None, help="leaky bucket size")
    parser.add_argument("--no-rate-limit", action="store_true", help="never answer QUERY_LIMIT_EXCEEDED")
    args = parser.parse_args(argv)
    try:
        source_cfg, target_cfg, source_port, target_port = build_configs(args)
    except (OSError, ValueError, TypeError) as exc:
        print(f"emulator: bad configuration: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    source = EmulatedPortal(source_cfg, port=source_port).start()
    target = EmulatedPortal(target_cfg, port=target_port).start()
    try:
        print(json.dumps({"source": _describe(source), "target": _describe(target)}), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        source.stop()
        target.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
