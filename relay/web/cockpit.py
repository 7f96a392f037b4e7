"""The integrator's page (``/cockpit/``): health per source, recent transfers, failures with a replay
button, an hourly chart and the mapping-check results — server-rendered, no JavaScript.

Behind ``RELAY_ADMIN_TOKEN``: a login form sets a signed session cookie (``HttpOnly``,
``SameSite=Strict``; ``Secure`` when ``public_url`` is https), whose key is derived from the token, so
every process of one deployment accepts it and changing the token logs everyone out.  Every form
carries a per-session CSRF token (compared in constant time) and the page refuses a POST whose
``Origin`` is another site.  Nothing secret is shown: portals appear by host, jobs without their
robot event tokens or payloads, errors as the relay redacted them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, flash, redirect, render_template_string, request, session, url_for
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as Redirect

from relay import metrics
from relay.config import RelayConfig
from relay.models import Job
from relay.store import Store
from relay.web.pages import CHECK, ERROR, LOGIN, MAIN

PREFIX = "/cockpit"
SESSION_HOURS = 12
#: onec job keys start with the record kind (relay.intake.onec): the target entity of each kind
_ONEC_KINDS = ("client", "incoming", "outgoing")


def _when(ts: float | None, now: float) -> str:
    if not ts:
        return "—"
    ago = max(0, int(now - ts))
    rel = (f"{ago} s" if ago < 120 else f"{ago // 60} min" if ago < 7200 else f"{ago // 3600} h" if ago < 172800
           else f"{ago // 86400} d")
    return f"{datetime.fromtimestamp(ts, tz=UTC):%Y-%m-%d %H:%M:%S} UTC ({rel} ago)"


class Links:
    """Links to records on the real portals (hosts only, never a webhook path)."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.target = config.target.host
        self.sources = {s.id: s.host for s in config.file.sources}

    def source(self, job: Job) -> str:
        host = self.sources.get(job.source_id)
        return f"https://{host}/crm/deal/details/{job.deal_id}/" if host and job.deal_id.isdigit() else ""

    def target_record(self, job: Job) -> str:
        if not job.target_deal_id or not self.target:
            return ""
        entity = "deal"
        if self.config.onec_base(job.source_id) is not None:
            kind = job.deal_id.split(":", 1)[0]
            spec = self.config.onec_mappings.get(job.source_id)
            doc = getattr(spec, kind, None) if kind in ("incoming", "outgoing") else None
            entity = "company" if kind == "client" else (getattr(doc, "target", "deal") or "deal")
        path = {"deal": "crm/deal/details", "company": "crm/company/details",
                "invoice": "crm/type/31/details"}.get(entity, "crm/deal/details")
        return f"https://{self.target}/{path}/{job.target_deal_id}/"


def chart(hours: list[tuple[float, int, int]]) -> Markup:
    """An SVG bar chart of done (green) and failed (red) transfers per hour."""
    width, height, pad = 720, 140, 20
    top = max([d + x for _h, d, x in hours] + [1])
    bar = (width - 2 * pad) / max(len(hours), 1)
    parts = [f'<svg role="img" aria-label="transfers per hour" width="{width}" height="{height + 30}" '
             f'viewBox="0 0 {width} {height + 30}" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{pad}" y1="{height}" x2="{width - pad}" y2="{height}" stroke="#999"/>',
             f'<text x="{pad}" y="12" font-size="11">max {top}/h</text>']
    for n, (start, done, dead) in enumerate(hours):
        x = pad + n * bar
        hd = (height - 20) * done / top
        hx = (height - 20) * dead / top
        label = f"{datetime.fromtimestamp(start, tz=UTC):%m-%d %H}:00 UTC: {done} done, {dead} failed"
        parts.append(f'<g><title>{label}</title>'
                     f'<rect class="done" x="{x:.1f}" y="{height - hd:.1f}" width="{bar * 0.8:.1f}" '
                     f'height="{hd:.1f}" fill="#3a8f3a"/>'
                     f'<rect class="dead" x="{x:.1f}" y="{height - hd - hx:.1f}" width="{bar * 0.8:.1f}" '
                     f'height="{hx:.1f}" fill="#c0392b"/></g>')
        if n % 6 == 0:
            parts.append(f'<text x="{x:.1f}" y="{height + 14}" font-size="10">'
                         f'{datetime.fromtimestamp(start, tz=UTC):%H}h</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def blueprint(config: RelayConfig, store: Store, token: str | None) -> Blueprint:
    """The ``/cockpit`` pages bound to a configuration, a store and the admin token."""
    bp = Blueprint("cockpit", __name__, url_prefix=PREFIX)
    links = Links(config)

    @bp.before_request
    def _guard() -> Redirect | None:
        if not token:
            abort(404, description="the integrator's page is disabled: set RELAY_ADMIN_TOKEN")
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin and origin != "null" and urlsplit(origin).netloc != request.host:
                abort(403, description="cross-site form refused")
            if request.endpoint != "cockpit.login":
                sent = request.form.get("csrf", "")
                if not session.get("csrf") or not hmac.compare_digest(sent.encode(), str(session["csrf"]).encode()):
                    abort(403, description="stale or missing form token: reload the page")
        if request.endpoint not in ("cockpit.login", "cockpit.login_form") and not session.get("auth"):
            return redirect(url_for("cockpit.login_form", next=request.path))
        return None

    @bp.after_request
    def _headers(resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                                                   "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @bp.errorhandler(HTTPException)
    def _error(exc: HTTPException) -> tuple[str, int]:
        return render_template_string(ERROR, code=exc.code, message=exc.description, csrf=""), exc.code or 500

    @bp.get("/login")
    def login_form() -> str:
        return render_template_string(LOGIN, error=request.args.get("error"), next=_safe_next(request.args.get("next")))

    @bp.post("/login")
    def login() -> Redirect:
        assert token is not None
        given = request.form.get("token", "")
        if not hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(token.encode()).digest()):
            time.sleep(0.5)  # slows guessing down
            return redirect(url_for("cockpit.login_form", error="1"))
        session.clear()
        session.permanent = True
        session["auth"], session["csrf"] = True, secrets.token_urlsafe(24)
        return redirect(_safe_next(request.form.get("next")) or url_for("cockpit.home"))

    @bp.post("/logout")
    def logout() -> Redirect:
        session.clear()
        return redirect(url_for("cockpit.login_form"))

    @bp.get("/")
    def home() -> str:
        now = time.time()
        ids = [s.id for s in config.file.sources] + [b.id for b in config.file.onec]
        activity = store.activity(ids, now=now)
        portal = metrics.portal_counters()
        checks = store.checks()
        rows = []
        for source_id in ids:
            act = activity.get(source_id)
            is_onec = config.onec_base(source_id) is not None
            counts = portal.get(f"source {source_id}", {})
            check = checks.get(source_id)
            rows.append({
                "id": source_id, "kind": "1C base" if is_onec else "partner portal",
                "host": links.sources.get(source_id, ""),
                "last_call": _when(act.last_call if act else None, now),
                "last_success": _when(act.last_success if act else None, now),
                "done": act.done if act else 0, "dead": act.dead if act else 0,
                "rate": f"{act.error_rate:.0%}" if act and act.error_rate is not None else "—",
                "pending": act.pending if act else 0,
                "r503": int(counts.get("503", 0)), "r429": int(counts.get("429", 0)),
                "wait": f"{counts.get('pacer_wait', 0.0):.1f} s",
                "watermark": (act.watermark if act else None) or "—",
                "check": check,
            })
        target = portal.get("target", {})
        failures, resolved = store.open_failures()
        return render_template_string(
            MAIN, rows=rows, target_host=links.target,
            target={"r503": int(target.get("503", 0)), "r429": int(target.get("429", 0)),
                    "wait": f"{target.get('pacer_wait', 0.0):.1f} s"},
            transfers=[_job_row(j, now) for j in store.recent(status="done", limit=50)],
            failures=[_job_row(j, now) for j in failures], resolved=resolved,
            chart=chart(store.hourly(48, now=now)), csrf=session.get("csrf", ""),
            now=_when(now, now))

    def _job_row(job: Job, now: float) -> dict[str, Any]:
        return {"id": job.id, "source": job.source_id, "record": job.deal_id, "status": job.status,
                "outcome": job.outcome or "", "target": job.target_deal_id or "", "error": job.last_error or "",
                "attempts": job.attempts, "when": _when(job.updated_at, now),
                "source_url": links.source(job), "target_url": links.target_record(job)}

    @bp.get("/checks/<source_id>")
    def check_page(source_id: str) -> str:
        result = store.checks().get(source_id)
        if result is None and config.source(source_id) is None:
            abort(404, description=f"no source {source_id[:64]!r}")
        return render_template_string(CHECK, source_id=source_id, result=result, csrf=session.get("csrf", ""),
                                      when=_when(result.get("checked_at") if result else None, time.time()))

    @bp.post("/jobs/<int:job_id>/replay")
    def replay(job_id: int) -> Redirect:
        try:
            queued = store.replay(job_id)
        except KeyError:
            flash(f"No job {job_id}.")
        else:
            flash(f"Job {job_id} replayed as job {queued.job_id}" + (" (merged into a waiting job)." if queued.merged
                                                                     else "."))
        return redirect(url_for("cockpit.home") + "#failures")

    @bp.post("/sources/<source_id>/replay-dead")
    def replay_dead(source_id: str) -> Redirect:
        done = store.replay_dead(source_id=source_id)
        flash(f"{len(done)} dead job(s) of {source_id} replayed.")
        return redirect(url_for("cockpit.home") + "#failures")

    return bp


def _safe_next(value: str | None) -> str:
    """Only a path on this page (no open redirect)."""
    return value if value and value.startswith(PREFIX + "/") and "//" not in value and "\\" not in value else ""


def install(app: Flask, config: RelayConfig, store: Store, token: str | None) -> None:
    """Register the page and its session settings on ``app``."""
    app.register_blueprint(blueprint(config, store, token))
    if token:
        app.secret_key = hmac.new(token.encode(), b"b24relay cockpit session", hashlib.sha256).hexdigest()
    secure = str(config.file.public_url or "").startswith("https://")
    app.config.update(SESSION_COOKIE_NAME="b24relay_session", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_SECURE=secure,
                      SESSION_COOKIE_PATH=PREFIX + "/", PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS))
