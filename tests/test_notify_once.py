"""Comments exactly once (issue 8, acceptance 7): a lost reply, or a worker that dies right after
sending, never gives a source deal a second comment for the same transfer."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.relayenv import RelayEnv, start, stop

pytestmark = pytest.mark.e2e


def test_a_comment_whose_reply_was_lost_is_not_sent_again(relay_env: RelayEnv) -> None:
    env = relay_env
    deals = [env.new_deal(TITLE=f"Lost {i}") for i in range(3)]
    env.source.inject("lost_reply", method="crm.timeline.comment.add", times=1)
    for d in deals:
        env.event(d)
    env.settle()
    for d in deals:
        [comment] = env.source.comments(d)
        assert "[ref " in comment["COMMENT"]
    notes = env.store.jobs(kind="notify", limit=10)
    assert {j.status for j in notes} == {"done"} and max(j.attempts for j in notes) == 2  # it was retried


def test_a_worker_that_dies_after_sending_comments_does_not_repeat_them(tmp_path: Path) -> None:
    env = start(tmp_path, lease_seconds=1)
    try:
        deals = [env.new_deal(TITLE=f"Kill {i}") for i in range(5)]
        for d in deals:
            env.event(d)
        worker = env.relay.worker("first")
        synced = env.store.claim(worker.owner, "sync", limit=25)
        worker._apply(env.relay.pipeline.sync(synced))  # the sync round only: the notify jobs are queued
        # the "dying" worker: it leases the notify jobs and sends them, but never records the round
        dying = env.relay.worker("dying")
        jobs = env.store.claim(dying.owner, "notify", limit=25, lease_seconds=1)
        assert len(jobs) == 5
        env.relay.pipeline.notify(jobs)  # comments are on the source now; the worker "dies" here
        assert sum(len(env.source.comments(d)) for d in deals) == 5
        time.sleep(1.2)  # its leases expire; another worker takes the jobs over
        env.settle()
        for d in deals:
            assert len(env.source.comments(d)) == 1
        assert {j.status for j in env.store.jobs(kind="notify", limit=10)} == {"done"}
    finally:
        stop(env)
