"""RELAY_LOG_FORMAT=json (issue 11, first part): one JSON object per line, job lines carry the source,
job, deal and target ids, and secrets stay redacted."""

from __future__ import annotations

import io
import json
import logging

from relay.redact import REDACTOR, JsonFormatter, RedactingFilter
from tests.relayenv import RelayEnv


def test_job_lines_are_json_with_their_ids_and_no_secret(relay_env: RelayEnv) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        deal = relay_env.new_deal()
        relay_env.event(deal)
        relay_env.settle()
        quiet = logging.getLogger("relay.jsontest")  # not propagated: the raw record stays out of caplog
        quiet.propagate = False
        quiet.addHandler(handler)
        quiet.warning("calling %s", relay_env.source.webhook_url)
        try:
            raise ValueError(f"boom at {relay_env.target.webhook_url}")
        except ValueError:
            quiet.exception("failed")
        quiet.removeHandler(handler)
    finally:
        root.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is one JSON object
    [done] = [x for x in lines if x["logger"] == "relay.worker" and "created" in x["message"]]
    [target] = relay_env.target.deals()
    assert done["source"] == "partner" and done["deal"] == str(deal) and done["target"] == str(target["ID"])
    assert isinstance(done["job"], str) and done["level"] == "INFO" and done["time"]
    text = stream.getvalue()
    for secret in (relay_env.source.config.secret, relay_env.target.config.secret):
        assert secret not in text
    assert any("exception" in x and "boom" in x["exception"] for x in lines)
    assert any("calling" in x["message"] and REDACTOR(x["message"]) == x["message"] for x in lines)
