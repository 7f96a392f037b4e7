"""The queue and link store on a real SQLite file."""


import pytest

from relay.store import Store


@pytest.fixture
def store(database_url: str) -> Store:
    s = Store(database_url)
    yield s
    s.close()


def test_repeat_calls_merge_into_one_pending_job(store: Store) -> None:
    first = store.enqueue_sync("p", "7", "ONCRMDEALUPDATE", now=100)
    again = store.enqueue_sync("p", "7", "ROBOT", now=101)
    other = store.enqueue_sync("p", "8", "ONCRMDEALUPDATE", now=102)
    assert (first.merged, again.merged, other.merged) == (False, True, False)
    assert again.job_id == first.job_id != other.job_id
    job = store.job(first.job_id)
    assert job is not None and job.events == 2 and job.trigger == "ROBOT"


def test_a_deal_is_never_leased_twice_at_once(store: Store) -> None:
    store.enqueue_sync("p", "7", "E", now=100)
    [running] = store.claim("w1", "sync", limit=10, now=101)
    follow_up = store.enqueue_sync("p", "7", "E", now=102)  # arrives while the first one runs
    assert not follow_up.merged
    assert store.claim("w2", "sync", limit=10, now=103) == []
    assert store.complete(running, "w1", status="done", outcome="created", target_deal_id="55", now=104)
    [next_job] = store.claim("w2", "sync", limit=10, now=105)
    assert next_job.id == follow_up.job_id and next_job.attempts == 1


def test_expired_lease_is_taken_back(store: Store) -> None:
    store.enqueue_sync("p", "7", "E", now=100)
    [job] = store.claim("dead-worker", "sync", lease_seconds=10, now=100)
    assert store.claim("w2", "sync", now=105) == []
    [again] = store.claim("w2", "sync", now=111)
    assert again.id == job.id and again.attempts == 2
    assert not store.complete(job, "dead-worker", status="done", outcome="x", now=112)  # lost its lease


def test_expired_lease_merges_into_waiting_job(store: Store) -> None:
    store.enqueue_sync("p", "7", "E", now=100)
    [job] = store.claim("dead-worker", "sync", lease_seconds=10, now=100)
    waiting = store.enqueue_sync("p", "7", "E", now=101)
    [taken] = store.claim("w2", "sync", now=111)
    assert taken.id == waiting.job_id
    assert store.job(job.id).status == "merged"


def test_retry_backoff_and_dead(store: Store) -> None:
    store.enqueue_sync("p", "7", "E", now=100)
    [job] = store.claim("w", "sync", now=100)
    assert store.retry(job, "w", error="QUERY_LIMIT_EXCEEDED", delay=30, now=100)
    assert store.claim("w", "sync", now=120) == []
    [job] = store.claim("w", "sync", now=131)
    assert store.complete(job, "w", status="dead", outcome="dead", error="validation: bad stage",
                          notify={"deal_id": "7", "comment": "failed"}, now=132)
    assert store.job(job.id).last_error == "validation: bad stage"
    [note] = store.claim("w", "notify", now=133)
    assert note.payload["comment"] == "failed" and note.deal_id == "7"
    assert store.counts() == {"sync": {"dead": 1}, "notify": {"running": 1}}


def test_retry_while_a_newer_call_waits_merges(store: Store) -> None:
    store.enqueue_sync("p", "7", "E", now=100)
    [job] = store.claim("w", "sync", now=100)
    store.enqueue_sync("p", "7", "E", now=101)
    assert store.retry(job, "w", error="timeout", delay=5, now=102)
    assert store.job(job.id).status == "merged"


def test_replay_dead_job(store: Store) -> None:
    store.enqueue_sync("p", "7", "E", now=100)
    [job] = store.claim("w", "sync", now=100)
    store.complete(job, "w", status="dead", outcome="dead", error="bad", now=101)
    replayed = store.replay(job.id, now=102)
    assert not replayed.merged and replayed.job_id != job.id
    assert store.job(replayed.job_id).trigger == "REPLAY"
    with pytest.raises(KeyError):
        store.replay(999)


def test_links(store: Store) -> None:
    assert store.link("p", "7") is None
    store.mark_creating([("p", "7")])
    assert store.link("p", "7").state == "creating"
    store.set_link("p", "7", "55", "abc")
    link = store.link("p", "7")
    assert (link.state, link.target_deal_id, link.fingerprint) == ("linked", "55", "abc")
    store.mark_creating([("p", "7")])  # never downgrades a known link
    assert store.link("p", "7").state == "linked"
    store.forget_creating("p", "7")
    assert store.link("p", "7") is not None
    assert store.unlink("p", "7") and store.link("p", "7") is None


def test_survives_reopen(database_url: str) -> None:
    url = database_url
    s1 = Store(url)
    queued = s1.enqueue_sync("p", "7", "E")
    s1.close()
    s2 = Store(url)
    assert s2.job(queued.job_id).status == "pending"
    s2.close()


def test_concurrent_calls_are_all_stored_and_merged_per_deal(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    calls = [str(7000 + (i % 20)) for i in range(800)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda d: store.enqueue_sync("p", d, "E"), calls))
    pending = store.jobs(status="pending", limit=100)
    assert len(pending) == 20 and len({j.deal_id for j in pending}) == 20
    assert sum(j.events for j in pending) == 800
    assert sum(not a.merged for a in answers) == 20
    assert {a.job_id for a in answers} == {j.id for j in pending}


def test_robot_tokens_of_merged_calls_are_all_kept(store: Store) -> None:
    first = store.enqueue_sync("p", "7", "APP_ROBOT", event_token="t1", now=100)
    store.enqueue_sync("p", "7", "ONCRMDEALUPDATE", now=101)  # no token: keeps t1
    store.enqueue_sync("p", "7", "APP_ROBOT", event_token="t2", now=102)
    store.enqueue_sync("p", "7", "APP_ROBOT", event_token="t2", now=103)  # the same call again: once
    assert store.job(first.job_id).event_tokens == ["t1", "t2"]  # type: ignore[union-attr]
    # a running job that is retried while a newer call waits hands its tokens over
    [running] = store.claim("w", "sync", now=104)
    waiting = store.enqueue_sync("p", "7", "APP_ROBOT", event_token="t3", now=105)
    assert store.retry(running, "w", error="503", delay=1, now=106)
    assert store.job(running.id).status == "merged"  # type: ignore[union-attr]
    assert store.job(waiting.job_id).event_tokens == ["t3", "t1", "t2"]  # type: ignore[union-attr]
    # ... and so does one whose worker died
    [taken] = store.claim("dead-worker", "sync", lease_seconds=10, now=110)
    later = store.enqueue_sync("p", "7", "APP_ROBOT", event_token="t4", now=111)
    store.claim("w2", "sync", now=121)
    assert store.job(taken.id).status == "merged"  # type: ignore[union-attr]
    assert store.job(later.job_id).event_tokens == ["t4", "t3", "t1", "t2"]  # type: ignore[union-attr]


def test_copy_checks_are_due_once_and_move_links(store: Store) -> None:
    from relay.models import Job, Transition

    store.enqueue_sync("p", "7", "E", now=100)
    [job] = store.claim("w", "sync", now=100)
    store.finish("w", [Transition(job, "done", outcome="created", link=("55", "f", None, 30.0))], now=100)
    assert store.due_checks(10, hold=60, now=120) == []
    [due] = store.due_checks(10, hold=60, now=131)
    assert (due.source_id, due.deal_id, due.target_deal_id) == ("p", "7", "55")
    assert store.due_checks(10, hold=60, now=150) == []  # held for the worker that took it
    store.checked({("p", "7"): "54"}, now=160)  # an older copy was kept
    link = store.link("p", "7")
    assert link is not None and link.target_deal_id == "54" and link.fingerprint is None
    assert store.due_checks(10, hold=60, now=10_000) == []
    assert isinstance(job, Job)


def test_deals_whose_jobs_gave_up_are_listed_for_the_sweep(store: Store) -> None:
    from relay.models import Transition
    from relay.store.queue import GAVE_UP

    for deal in ("7", "8", "9"):
        store.enqueue_sync("p", deal, "E", now=100)
    jobs = {j.deal_id: j for j in store.claim("w", "sync", limit=3, now=100)}
    store.finish("w", [Transition(jobs["7"], "dead", outcome=GAVE_UP, error="x"),
                       Transition(jobs["8"], "dead", outcome="dead", error="mapping"),
                       Transition(jobs["9"], "dead", outcome=GAVE_UP, error="x")], now=101)
    store.enqueue_sync("p", "9", "E", now=102)  # deal 9 has a newer job already
    assert store.gave_up_deals("p") == ["7"]
