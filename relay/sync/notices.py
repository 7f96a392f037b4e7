"""Pure: what the relay tells people — robot answers, comments and notifications, integrator alerts.

The payload of a ``notify`` job is built here and turned into batch commands here.  On the
*source* portal: ``crm.timeline.comment.add`` with lower-case ``fields``
(``api-reference/crm/timeline/comments/crm-timeline-comment-add.md``), ``im.notify.system.add`` to
the deal's responsible user (``api-reference/chats/notifications/im-notify-system-add.md``) and one
``bizproc.event.send`` per application-robot call (``api-reference/bizproc/bizproc-robot/bizproc-event-send.md``):
every robot call gets exactly one answer, whatever the job's end (relayed, unchanged, skipped,
failed), so no workflow waits forever.  On the *target* portal (``"portal": "target"``): an alert to
the integrator's user when a job dies, or when a source that usually calls has gone quiet.

Texts are templates (``str.format`` names) in the source's ``language`` (ru, uk, en), each
overridable by name in the source's ``messages`` (:data:`PLACEHOLDERS` lists the names and what
each may use; :func:`template_problem` checks one at load time).  Links are BB-code
``[url=https://…]text[/url]``: ``im.notify.system.add``'s ``MESSAGE`` "supports BB codes"
(``api-reference/chats/notifications/im-notify-system-add.md`` ->
``api-reference/chats/messages/formatting.md``: ``[URL=...]...[/URL]``); a timeline comment's
``COMMENT`` is the same BB-code text the comment editor writes (the comment pages say only "text of
the comment").  Robot answers (workflow log, return values) get plain text: ``#501``, the URL is
``target_deal_url``.

Each payload lists the parts already sent under ``done``, so a retried notify job never repeats one.
"""

from __future__ import annotations

import string
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.portal.protocol import Command

TARGET = "target"
LANGUAGES = ("ru", "uk", "en")
_DEAL = frozenset({"deal_id", "title"})
_LINKED = _DEAL | {"target_id", "target_url", "target_link", "target_portal"}
#: the messages a source may override (``messages:``) and the placeholders each may use
PLACEHOLDERS: Mapping[str, frozenset[str]] = {
    "created": _LINKED,  # comment (and robot answer): a target deal was created
    "updated": _LINKED,  # comment (and robot answer): the target deal was updated
    "notify_created": _LINKED,  # notification to the deal's responsible user: created
    "notify_updated": _LINKED,  # notification to the deal's responsible user: updated
    "failed": _DEAL | {"reason"},  # robot answer, and comment with notify.failure_comment: failed for good
    "files_skipped": frozenset({"files"}),  # the line added when some files were not sent
    "unchanged": _LINKED,  # robot answer: nothing changed since the last transfer
    "skipped": _DEAL | {"reason"},  # robot answer: the deal is not relayed (stage, deleted, ...)
}
DEFAULTS: Mapping[str, Mapping[str, str]] = {
    "ru": {
        "created": "[b24relay] Сделка передана в ESB: создана сделка {target_link}.",
        "updated": "[b24relay] Сделка {target_link} в ESB обновлена.",
        "notify_created": "Сделка «{title}» (#{deal_id}) передана в ESB: создана сделка {target_link}.",
        "notify_updated": "Сделка «{title}» (#{deal_id}): сделка {target_link} в ESB обновлена.",
        "failed": "[b24relay] Не удалось передать сделку в ESB. Если причина в данных сделки, исправьте их: "
                  "после следующего изменения сделка будет передана снова. Иначе сообщите администратору ESB. "
                  "Причина: {reason}",
        "files_skipped": "Не переданы файлы: {files}.",
        "unchanged": "[b24relay] Сделка {target_link} в ESB уже актуальна.",
        "skipped": "[b24relay] Сделка не передана в ESB: {reason}.",
    },
    "uk": {
        "created": "[b24relay] Угоду передано до ESB: створено угоду {target_link}.",
        "updated": "[b24relay] Угоду {target_link} в ESB оновлено.",
        "notify_created": "Угоду «{title}» (#{deal_id}) передано до ESB: створено угоду {target_link}.",
        "notify_updated": "Угода «{title}» (#{deal_id}): угоду {target_link} в ESB оновлено.",
        "failed": "[b24relay] Не вдалося передати угоду до ESB. Якщо причина в даних угоди, виправте їх: "
                  "після наступної зміни угоду буде передано знову. Інакше повідомте адміністратора ESB. "
                  "Причина: {reason}",
        "files_skipped": "Не передано файли: {files}.",
        "unchanged": "[b24relay] Угода {target_link} в ESB вже актуальна.",
        "skipped": "[b24relay] Угоду не передано до ESB: {reason}.",
    },
    "en": {
        "created": "[b24relay] Sent to ESB: created deal {target_link}.",
        "updated": "[b24relay] ESB deal {target_link} updated.",
        "notify_created": "Deal «{title}» (#{deal_id}) sent to ESB: created deal {target_link}.",
        "notify_updated": "Deal «{title}» (#{deal_id}): ESB deal {target_link} updated.",
        "failed": "[b24relay] This deal could not be sent to ESB. If the cause is in the deal's data, correct "
                  "it: the deal is sent again after its next change. Otherwise tell the ESB administrator. "
                  "Reason: {reason}",
        "files_skipped": "Not sent: {files}.",
        "unchanged": "[b24relay] ESB deal {target_link} is up to date.",
        "skipped": "[b24relay] Not sent to ESB: {reason}.",
    },
}
#: integrator alerts on the target portal (``notify.language``; not overridable)
_ALERTS: Mapping[str, Mapping[str, str]] = {
    "ru": {
        "deal": "[b24relay] Сделка {deal} источника {source_id} не передана: {reason}",
        "record": "[b24relay] Запись 1С {deal} базы {source_id} не передана: {reason}",
        "fix": "Устраните причину, затем выполните `relay replay --dead --source {source_id}`.",
        "hold": " О других сбоях этого источника в ближайшие {quiet} не сообщаем "
                "(см. `relay jobs --status dead`).",
        "quiet": "[b24relay] От источника {source_id} нет вызовов уже {silence} (последний: {last_call} UTC), "
                 "хотя обычно они приходят чаще. Проверьте робота или исходящий вебхук на портале партнёра"
                 "{domain} и `relay jobs --source {source_id}`. Повторно сообщим, только если вызовы "
                 "возобновятся и снова прекратятся.",
        "quiet_1c": "[b24relay] От базы 1С {source_id} нет вызовов уже {silence} (последний: {last_call} UTC), "
                    "хотя обычно они приходят чаще. Проверьте модуль обмена в базе 1С (адрес, токен, журнал "
                    "регистрации) и `relay jobs --source {source_id}`. Повторно сообщим, только если вызовы "
                    "возобновятся и снова прекратятся.{domain}",
        "cockpit": "Панель b24relay", "units": "д ч мин с",
    },
    "uk": {
        "deal": "[b24relay] Угоду {deal} джерела {source_id} не передано: {reason}",
        "record": "[b24relay] Запис 1С {deal} бази {source_id} не передано: {reason}",
        "fix": "Усуньте причину, потім виконайте `relay replay --dead --source {source_id}`.",
        "hold": " Про інші збої цього джерела протягом наступних {quiet} не сповіщаємо "
                "(див. `relay jobs --status dead`).",
        "quiet": "[b24relay] Від джерела {source_id} немає викликів уже {silence} (останній: {last_call} UTC), "
                 "хоча зазвичай вони надходять частіше. Перевірте робота або вихідний вебхук на порталі партнера"
                 "{domain} і `relay jobs --source {source_id}`. Повторно повідомимо, лише якщо виклики "
                 "відновляться й знову припиняться.",
        "quiet_1c": "[b24relay] Від бази 1С {source_id} немає викликів уже {silence} (останній: {last_call} UTC), "
                    "хоча зазвичай вони надходять частіше. Перевірте модуль обміну в базі 1С (адресу, токен, "
                    "журнал реєстрації) і `relay jobs --source {source_id}`. Повторно повідомимо, лише якщо "
                    "виклики відновляться й знову припиняться.{domain}",
        "cockpit": "Панель b24relay", "units": "д год хв с",
    },
    "en": {
        "deal": "[b24relay] Deal {deal} of source {source_id} could not be relayed: {reason}",
        "record": "[b24relay] 1C record {deal} of base {source_id} could not be relayed: {reason}",
        "fix": "Fix the cause, then `relay replay --dead --source {source_id}`.",
        "hold": " Further failures of this source in the next {quiet} are not notified "
                "(see `relay jobs --status dead`).",
        "quiet": "[b24relay] Source {source_id} has sent no calls for {silence} (the last one at {last_call} UTC), "
                 "though it usually calls more often. Check the robot or the outgoing webhook on the partner "
                 "portal{domain} and `relay jobs --source {source_id}`. You are told again only after calls "
                 "resume and stop again.",
        "quiet_1c": "[b24relay] 1C base {source_id} has sent no calls for {silence} (the last one at {last_call} "
                    "UTC), though it usually calls more often. Check the exchange module in the 1C base (URL, "
                    "token, event log) and `relay jobs --source {source_id}`. You are told again only after calls "
                    "resume and stop again.{domain}",
        "cockpit": "b24relay cockpit", "units": "d h min s",
    },
}
#: a source "usually calls" when it made at least this many calls in the ``quiet_after`` seconds up to its last one
QUIET_MIN_CALLS = 2


def template_problem(name: str, text: str) -> str | None:
    """Why ``text`` cannot be the message ``name`` (unknown name or placeholder, malformed); None if it can."""
    allowed = PLACEHOLDERS.get(name)
    if allowed is None:
        return f"unknown message {name!r}; known: {', '.join(PLACEHOLDERS)}"
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
        for f in names:
            if f not in allowed:
                return (f"unknown placeholder {{{f}}}; {name} may use "
                        f"{', '.join('{' + a + '}' for a in sorted(allowed))} (write {{{{ }}}} for literal braces)")
        text.format(**{a: "" for a in allowed})
    except (ValueError, IndexError, KeyError) as exc:
        return f"malformed template: {exc} (write {{{{ }}}} for literal braces)"
    return None


@dataclass(frozen=True)
class Texts:
    """One source's messages: the defaults of ``language`` unless ``overrides`` names them."""

    language: str = "ru"
    overrides: Mapping[str, str] = field(default_factory=dict)

    def render(self, name: str, **values: str) -> str:
        """The message ``name`` filled in (values must cover its :data:`PLACEHOLDERS`); an empty override
        keeps the default."""
        template = self.overrides.get(name) or DEFAULTS.get(self.language, DEFAULTS["ru"])[name]
        return template.format(**values)


RU = Texts()


def link(url: str, text: str) -> str:
    """``text`` as a BB-code link to ``url`` (``[url=…]…[/url]``), or just ``text`` without a URL."""
    return f"[url={url}]{text}[/url]" if url else text


def _payload(*, deal_id: str, text: str, comment: bool, notify: str = "", user: str = "",
             ref: str = "") -> dict[str, Any]:
    """The comment (``text`` ending with the ``ref`` marker that lets a retry find it, :func:`comment_sent`)
    and the responsible ``user``'s notification ``notify``."""
    payload: dict[str, Any] = {"deal_id": deal_id, "done": []}
    if comment:
        payload["comment"] = f"{text} [ref {ref}]" if ref else text
        if ref:
            payload["ref"] = ref
    if notify and user:
        payload["notify"] = {"user_id": user, "message": notify}
    return payload


def _robots(payload: dict[str, Any], tokens: Sequence[str], status: str, target_deal_id: str,
            message: str, url: str = "") -> dict[str, Any]:
    """Add one robot answer per ``event_token`` (return values ``target_deal_id``, ``target_deal_url``,
    ``status``, ``message`` and ``result``; the message also goes to the workflow log).  A failure is
    ``status`` ``error`` (``result`` stays ``failed``, as workflows written before had it)."""
    if tokens:
        payload["robots"] = {"tokens": list(tokens), "log_message": message, "return_values": {
            "target_deal_id": target_deal_id, "target_deal_url": url, "result": status,
            "status": "error" if status == "failed" else status, "message": message}}
    return payload


def deal_url(portal: str, deal_id: str) -> str:
    """A deal's page on a portal (``https://<portal>/crm/deal/details/<id>/``), or ``""``."""
    return f"https://{portal}/crm/deal/details/{deal_id}/" if portal and deal_id else ""


def _values(deal: Mapping[str, Any] | None, deal_id: str, target_deal_id: str = "",
            target_portal: str = "") -> dict[str, str]:
    """Placeholder values: ``target_link`` is a BB-code link (see :func:`_plain` for robots)."""
    url = deal_url(target_portal, target_deal_id)
    return {"deal_id": deal_id, "title": str((deal or {}).get("TITLE") or f"#{deal_id}"),
            "target_id": target_deal_id, "target_url": url, "target_portal": target_portal,
            "target_link": link(url, f"#{target_deal_id}")}


def _plain(values: Mapping[str, str]) -> dict[str, str]:
    return {**values, "target_link": f"#{values['target_id']}"}


def success_notice(
    *, action: str, deal: Mapping[str, Any], target_deal_id: str, target_portal: str,
    event_tokens: Sequence[str] = (), comment: bool = True, notify_user: bool = True, ref: str = "", note: str = "",
    texts: Texts = RU,
) -> dict[str, Any]:
    """Payload telling the source that its deal was created/updated on the target, with a link to the
    target deal (``note``: a line more, e.g. :func:`skipped_files`)."""
    name = "created" if action == "created" else "updated"
    deal_id = str(deal.get("ID", ""))
    values = _values(deal, deal_id, target_deal_id, target_portal)
    more = f"\n{note}" if note else ""
    payload = _payload(deal_id=deal_id, text=texts.render(name, **values) + more, comment=comment,
                       notify=texts.render(f"notify_{name}", **values) + more if notify_user else "",
                       user=str(deal.get("ASSIGNED_BY_ID") or ""), ref=ref)
    return _robots(payload, event_tokens, action, target_deal_id, texts.render(name, **_plain(values)) + more,
                   values["target_url"])


def skipped_files(skipped: Sequence[Any], texts: Texts = RU) -> str:
    """The line telling the partner which files were not sent (``relay.sync.files.Skipped``), or ``""``."""
    if not skipped:
        return ""
    return texts.render("files_skipped", files="; ".join(f"{s.name} ({s.reason})" for s in skipped))


def robot_notice(*, deal_id: str, event_tokens: Sequence[str], status: str, reason: str = "",
                 target_deal_id: str = "", target_portal: str = "", texts: Texts = RU) -> dict[str, Any] | None:
    """Payload answering only the robots: ``status`` ``unchanged`` (relayed before, nothing changed) or
    ``skipped`` (not relayed, for ``reason``); None without robots."""
    if not event_tokens:
        return None
    values = {**_plain(_values(None, deal_id, target_deal_id, target_portal)), "reason": reason}
    text = texts.render("unchanged" if status == "unchanged" else "skipped", **values)
    return _robots({"deal_id": deal_id, "done": []}, event_tokens, status, target_deal_id, text, values["target_url"])


def failure_notice(
    *, deal_id: str, reason: str, deal: Mapping[str, Any] | None, event_tokens: Sequence[str] = (),
    comment: bool = False, ref: str = "", texts: Texts = RU,
) -> dict[str, Any] | None:
    """Payload telling the source why its deal could not be relayed and what to do: the robots always,
    a comment on the deal when ``comment``; None when there is nothing to send.  The partner's manager
    gets no notification: failures go to the integrator (:func:`alert`)."""
    text = texts.render("failed", **_values(deal, deal_id), reason=reason[:1500])
    payload = _payload(deal_id=deal_id, text=text, comment=comment, ref=ref)
    _robots(payload, event_tokens, "failed", "", text)
    return payload if ("comment" in payload or "robots" in payload) else None


def duration(seconds: float, language: str = "ru") -> str:
    """``seconds`` for people, in the two largest units: ``2 ч 5 мин``, ``15 min``, ``40 с``."""
    day, hour, minute, second = _ALERTS.get(language, _ALERTS["ru"])["units"].split()
    left, counts = max(0, int(seconds)), []
    for size, unit in ((86400, day), (3600, hour), (60, minute)):
        count, left = divmod(left, size)
        counts.append((count, unit))
    first = next((i for i, (count, _) in enumerate(counts) if count), None)
    if first is None:
        return f"{max(0, int(seconds))} {second}"
    return " ".join(f"{count} {unit}" for count, unit in counts[first:first + 2] if count)


def _alert(user_id: str, deal_id: str, text: str, cockpit_url: str, language: str) -> dict[str, Any]:
    if cockpit_url:
        text += "\n" + link(cockpit_url, _ALERTS[language]["cockpit"])
    return {"portal": TARGET, "deal_id": deal_id, "done": [], "alert": {"user_id": user_id, "message": text}}


def alert(*, user_id: str, source_id: str, deal_id: str, reason: str, quiet: float, language: str = "ru",
          source_deal_url: str = "", cockpit_url: str = "") -> dict[str, Any]:
    """Payload of an integrator alert on the target portal: a job died (what, why, what to do), with links
    to the source deal and to the relay's page when they are known."""
    lang = language if language in _ALERTS else "ru"
    record = ":" in deal_id  # 1C keys: kind:number:year
    what = deal_id if record else link(source_deal_url, f"#{deal_id}")
    words = _ALERTS[lang]
    text = (words["record" if record else "deal"].format(deal=what, source_id=source_id, reason=reason[:1200])
            + "\n" + words["fix"].format(source_id=source_id)
            + (words["hold"].format(quiet=duration(quiet, lang)) if quiet >= 60 else ""))
    return _alert(user_id, deal_id, text, cockpit_url, lang)


def is_quiet(*, now: float, last_call: float | None, recent_calls: int, quiet_after: float,
             alerted_for: float | None) -> bool:
    """True when a source has gone quiet and nobody was told yet: its newest call (``last_call``) is at
    least ``quiet_after`` seconds old, it usually calls (``recent_calls``, its calls in the ``quiet_after``
    seconds up to and including that one, reach :data:`QUIET_MIN_CALLS`), and no alert was sent for the
    silence after that call (``alerted_for``: the last call the previous alert was about)."""
    if last_call is None or now - last_call < quiet_after or recent_calls < QUIET_MIN_CALLS:
        return False
    return alerted_for is None or alerted_for < last_call


def quiet_alert(*, user_id: str, source_id: str, last_call: float, now: float, language: str = "ru",
                domain: str = "", cockpit_url: str = "", onec: bool = False) -> dict[str, Any]:
    """Payload of an integrator alert on the target portal: a source (or, ``onec``, a 1C base) that usually
    calls has gone quiet."""
    lang = language if language in _ALERTS else "ru"
    text = _ALERTS[lang]["quiet_1c" if onec else "quiet"].format(
        source_id=source_id, silence=duration(now - last_call, lang), domain=f" ({domain})" if domain else "",
        last_call=time.strftime("%Y-%m-%d %H:%M", time.gmtime(last_call)))
    return _alert(user_id, "", text, cockpit_url, lang)


def comment_pending(payload: Mapping[str, Any]) -> bool:
    """True when the payload has a marked comment not yet known to be sent."""
    return "comment" in payload and "comment" not in payload.get("done", []) and bool(payload.get("ref"))


def comment_sent(payload: Mapping[str, Any], comments: Sequence[str]) -> bool:
    """True when one of the deal's ``comments`` is this payload's (it carries its ``ref`` marker)."""
    marker = f"[ref {payload.get('ref')}]"
    return bool(payload.get("ref")) and any(marker in text for text in comments)


def commands(payload: Mapping[str, Any], prefix: str) -> dict[str, tuple[str, Command]]:
    """Batch commands for the parts of a notify payload not sent yet: ``{name: (part, command)}``,
    names ending in ``prefix``; ``part`` goes into ``done`` once its command succeeded."""
    done = set(payload.get("done", []))
    out: dict[str, tuple[str, Command]] = {}
    if "comment" in payload and "comment" not in done:
        out[f"comment{prefix}"] = ("comment", Command("crm.timeline.comment.add", {"fields": {
            "ENTITY_ID": payload["deal_id"], "ENTITY_TYPE": "deal", "COMMENT": payload["comment"]}}))
    for part in ("notify", "alert"):
        if part in payload and part not in done:
            out[f"{part}{prefix}"] = (part, Command("im.notify.system.add", {
                "USER_ID": payload[part]["user_id"], "MESSAGE": payload[part]["message"]}))
    for n, (token, values, log) in enumerate(_robot_answers(payload)):
        if f"robot:{n}" not in done and not (n == 0 and "robot" in done):  # "robot": the old one-token form
            params: dict[str, Any] = {"EVENT_TOKEN": token, "RETURN_VALUES": values}
            if log:
                params["LOG_MESSAGE"] = log
            out[f"robot{n}{prefix}"] = (f"robot:{n}", Command("bizproc.event.send", params))
    return out


def _robot_answers(payload: Mapping[str, Any]) -> list[tuple[str, Any, str | None]]:
    robots = payload.get("robots")
    if isinstance(robots, Mapping):
        return [(t, robots.get("return_values", {}), robots.get("log_message")) for t in robots.get("tokens", [])]
    old = payload.get("robot")  # notify jobs stored before robots were merged (one token)
    if isinstance(old, Mapping) and old.get("event_token"):
        return [(old["event_token"], old.get("return_values", {}), old.get("log_message"))]
    return []
