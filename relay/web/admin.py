"""Token-protected admin HTTP API (same process as the handler): jobs, replay, sweep requests.

Enabled when ``RELAY_ADMIN_TOKEN`` is set; every request must carry ``Authorization: Bearer <token>``
(compared in constant time).  Without the header: 401; with a wrong token: 403; when no token is
configured the routes answer 404.  The web side only reads and re-queues jobs and asks for a sweep;
workers do the Bitrix24 work.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from relay.models import Job
from relay.store import Store

STATUSES = {"pending", "running", "done", "skipped", "dead", "merged"}


def job_json(job: Job) -> dict[str, Any]:
    """A job as the admin API shows it (the robot's event token left out)."""
    return {"id": job.id, "kind": job.kind, "source_id": job.source_id, "deal_id": job.deal_id,
            "status": job.status, "attempts": job.attempts, "events": job.events, "trigger": job.trigger,
            "outcome": job.outcome, "target_deal_id": job.target_deal_id, "last_error": job.last_error,
            "created_at": job.created_at, "updated_at": job.updated_at}


def _since(value: Any) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        abort(400, description=f"since: not an ISO 8601 time or unix seconds: {str(value)[:40]!r}")
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def blueprint(store: Store, token: str | None) -> Blueprint:
    """The ``/admin`` routes bound to a store and the admin token."""
    bp = Blueprint("admin", __name__, url_prefix="/admin")

    @bp.before_request
    def _authorize() -> None:
        if not token:
            abort(404, description="admin API disabled: set RELAY_ADMIN_TOKEN")
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            abort(401, description="missing Authorization: Bearer <RELAY_ADMIN_TOKEN>")
        if not hmac.compare_digest(header[7:].strip().encode(), token.encode()):
            abort(403, description="wrong admin token")

    @bp.get("/jobs")
    def list_jobs() -> Response:
        status = request.args.get("status")
        if status is not None and status not in STATUSES:
            abort(400, description=f"status must be one of {sorted(STATUSES)}")
        limit = request.args.get("limit", "50")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            abort(400, description="limit must be 1..1000")
        found = store.jobs(status=status, kind=request.args.get("kind"), source_id=request.args.get("source"),
                           deal_id=request.args.get("deal"), limit=int(limit))
        return jsonify({"jobs": [job_json(j) for j in found]})

    @bp.get("/jobs/<int:job_id>")
    def one_job(job_id: int) -> Response:
        job = store.job(job_id)
        if job is None:
            abort(404, description=f"no job {job_id}")
        return jsonify(job_json(job))

    @bp.post("/jobs/<int:job_id>/replay")
    def replay_one(job_id: int) -> Response:
        try:
            queued = store.replay(job_id)
        except KeyError:
            abort(404, description=f"no job {job_id}")
        return jsonify({"ok": True, "replayed": job_id, "job_id": queued.job_id, "merged": queued.merged})

    @bp.post("/replay")
    def replay_many() -> Response:
        body = request.get_json(silent=True) or {}
        if not body.get("dead"):
            abort(400, description='send {"dead": true, "source": optional id, "since": optional time}')
        done = store.replay_dead(source_id=body.get("source"), since=_since(body.get("since")))
        return jsonify({"ok": True, "replayed": [{"job": old, "job_id": q.job_id, "merged": q.merged}
                                                 for old, q in done]})

    @bp.post("/sweep")
    def sweep() -> Response:
        body = request.get_json(silent=True) or {}
        store.request_sweep(body.get("source"))
        return jsonify({"ok": True, "requested": body.get("source") or "all sources"})

    return bp
