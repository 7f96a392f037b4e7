"""Templates of the integrator's page (Jinja, autoescaped by Flask; no JavaScript, inline CSS only)."""

from __future__ import annotations

_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}b24relay{% endblock %}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#f6f7f9}
header{background:#1d3557;color:#fff;padding:10px 20px;display:flex;justify-content:space-between;align-items:center}
header a{color:#fff}
header button{color:#fff;background:transparent;border:1px solid #fff;border-radius:3px;padding:3px 10px}
main{padding:10px 20px 40px}
h1{font-size:18px;margin:0} h2{font-size:16px;margin:24px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border:1px solid #dde;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eef1f6} td.num{text-align:right}
.ok{color:#2d7a2d;font-weight:600} .bad{color:#b02a1c;font-weight:600} .muted{color:#777}
.flash{background:#fff6d5;border:1px solid #e6c84a;padding:6px 10px;margin:10px 0}
.err{max-width:520px;word-break:break-word}
form.inline{display:inline} button{cursor:pointer}
</style></head><body>
<header><h1>b24relay — integrator's page</h1>
{% if csrf %}<form class="inline" method="post" action="{{ url_for('cockpit.logout') }}">
<input type="hidden" name="csrf" value="{{ csrf }}"><button type="submit">Log out</button></form>{% endif %}
</header><main>
{% with messages = get_flashed_messages() %}{% for m in messages %}<p class="flash" role="status">{{ m }}</p>
{% endfor %}{% endwith %}
"""
_FOOT = "</main></body></html>"

LOGIN = _HEAD.replace("{% block title %}b24relay{% endblock %}", "b24relay — log in") + """
<h2>Log in</h2>
{% if error %}<p class="bad" role="alert">Wrong token.</p>{% endif %}
<form method="post" action="{{ url_for('cockpit.login') }}">
<label>Admin token (RELAY_ADMIN_TOKEN) <input type="password" name="token" id="token" autocomplete="current-password"
 required autofocus></label>
<input type="hidden" name="next" value="{{ next }}">
<button type="submit" id="login">Log in</button>
</form>""" + _FOOT

MAIN = _HEAD + """
<p class="muted">Target portal: {{ target_host or '—' }} · its refusals:
 503 × {{ target.r503 }}, 429 × {{ target.r429 }} · waited for its rate limit: {{ target.wait }}
 · as of {{ now }}. Counters since the processes started.</p>

<h2 id="health">Sources</h2>
<table id="sources"><thead><tr><th>Source</th><th>Last call</th><th>Last success</th><th>Done 24 h</th>
<th>Failed 24 h</th><th>Error rate</th><th>Waiting</th><th>503 / 429</th><th>Pacer wait</th><th>Sweep watermark</th>
<th>Mapping check</th></tr></thead><tbody>
{% for r in rows %}<tr data-source="{{ r.id }}">
<td><b>{{ r.id }}</b><br><span class="muted">{{ r.kind }}{% if r.host %} · {{ r.host }}{% endif %}</span></td>
<td>{{ r.last_call }}</td><td>{{ r.last_success }}</td><td class="num">{{ r.done }}</td>
<td class="num">{{ r.dead }}{% if r.dead %}<form class="inline" method="post"
 action="{{ url_for('cockpit.replay_dead', source_id=r.id) }}"><input type="hidden" name="csrf" value="{{ csrf }}">
 <button type="submit" class="replay-all" title="replay every dead job of this source">replay all</button></form>
{% endif %}</td><td class="num">{{ r.rate }}</td><td class="num">{{ r.pending }}</td>
<td class="num">{{ r.r503 }} / {{ r.r429 }}</td><td class="num">{{ r.wait }}</td><td>{{ r.watermark }}</td>
<td>{% if r.check is none %}<span class="muted">not checked yet (<code>relay mapping check</code>)</span>
{% elif r.check.error %}<a class="bad" href="{{ url_for('cockpit.check_page', source_id=r.id) }}">could not read</a>
{% elif r.check.findings %}<a class="bad" href="{{ url_for('cockpit.check_page', source_id=r.id) }}">
{{ r.check.findings|length }} finding(s)</a>
{% else %}<a class="ok" href="{{ url_for('cockpit.check_page', source_id=r.id) }}">OK</a>{% endif %}</td>
</tr>{% endfor %}
</tbody></table>

<h2 id="chart">Transfers per hour (48 h, UTC)</h2>
<p>{{ chart }}<br><span class="ok">■ done</span> <span class="bad">■ failed</span></p>

<h2 id="failures">Failures (dead jobs not sent again yet, newest first)</h2>
{% if resolved %}<p class="muted">{{ resolved }} older failure(s) were replayed or sent again since
 (<code>relay jobs --status dead</code> lists them all).</p>{% endif %}
{% if failures %}<table id="dead"><thead><tr><th>Job</th><th>Source</th><th>Record</th><th>Tries</th><th>When</th>
<th>Reason</th><th></th></tr></thead><tbody>
{% for j in failures %}<tr data-job="{{ j.id }}"><td>{{ j.id }}</td><td>{{ j.source }}</td>
<td>{% if j.source_url %}<a href="{{ j.source_url }}" rel="noreferrer" target="_blank">{{ j.record }}</a>
{% else %}{{ j.record }}{% endif %}</td><td class="num">{{ j.attempts }}</td><td>{{ j.when }}</td>
<td class="err">{{ j.error }}</td>
<td><form class="inline" method="post" action="{{ url_for('cockpit.replay', job_id=j.id) }}">
<input type="hidden" name="csrf" value="{{ csrf }}"><button type="submit" class="replay">Replay</button></form></td>
</tr>{% endfor %}</tbody></table>
{% else %}<p class="ok" id="no-dead">No dead jobs.</p>{% endif %}

<h2 id="transfers">Recent transfers</h2>
{% if transfers %}<table id="done"><thead><tr><th>Job</th><th>Source</th><th>Source record</th><th>Target record</th>
<th>Outcome</th><th>When</th></tr></thead><tbody>
{% for j in transfers %}<tr data-job="{{ j.id }}"><td>{{ j.id }}</td><td>{{ j.source }}</td>
<td>{% if j.source_url %}<a href="{{ j.source_url }}" rel="noreferrer" target="_blank">{{ j.record }}</a>
{% else %}{{ j.record }}{% endif %}</td>
<td>{% if j.target_url %}<a href="{{ j.target_url }}" rel="noreferrer" target="_blank">{{ j.target }}</a>
{% else %}{{ j.target }}{% endif %}</td><td>{{ j.outcome }}</td><td>{{ j.when }}</td></tr>{% endfor %}
</tbody></table>{% else %}<p class="muted">Nothing relayed yet.</p>{% endif %}
""" + _FOOT

CHECK = _HEAD + """
<p><a href="{{ url_for('cockpit.home') }}">← back</a></p>
<h2>Mapping check of {{ source_id }}</h2>
{% if result is none %}<p class="muted">Not checked yet: run
 <code>relay mapping check --source {{ source_id }}</code>.</p>
{% else %}<p>Checked {{ when }}: <code>{{ result.file }}</code></p>
{% if result.error %}<p class="bad">{{ result.error }}</p>{% endif %}
{% if result.findings %}<table id="findings"><thead><tr><th>Line</th><th>Key</th><th>Problem</th>
<th>Suggestion</th></tr></thead><tbody>{% for f in result.findings %}<tr><td class="num">{{ f.line or '' }}</td>
<td><code>{{ f.key }}</code></td><td>{{ f.message }}</td><td>{{ f.suggestion }}</td></tr>{% endfor %}</tbody></table>
{% elif not result.error %}<p class="ok">Every reference exists on both portals.</p>{% endif %}{% endif %}
""" + _FOOT

ERROR = _HEAD + """<h2>{{ code }}</h2><p class="bad">{{ message }}</p>
<p><a href="{{ url_for('cockpit.home') }}">Back to the page</a></p>""" + _FOOT
