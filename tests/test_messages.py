"""Messages people read: per-source language and templates, links to the target deal (pure, and config)."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from relay.config import load_config
from relay.errors import ConfigError
from relay.sync import notices
from relay.sync.files import Skipped

DEAL = {"ID": "7", "ASSIGNED_BY_ID": "3", "TITLE": "Котёл"}
URL = "https://esb.bitrix24.ru/crm/deal/details/501/"
LINK = f"[url={URL}]#501[/url]"


def created(texts: notices.Texts = notices.RU, **kw: object) -> dict:
    return notices.success_notice(action="created", deal=DEAL, target_deal_id="501", target_portal="esb.bitrix24.ru",
                                  event_tokens=["t"], ref="abc123", texts=texts, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("language", notices.LANGUAGES)
def test_every_language_has_every_message_and_each_default_is_a_valid_template(language: str) -> None:
    defaults = notices.DEFAULTS[language]
    assert set(defaults) == set(notices.PLACEHOLDERS)
    for name, text in defaults.items():
        assert notices.template_problem(name, text) is None, (language, name)
        used = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        assert used <= notices.PLACEHOLDERS[name]


@pytest.mark.parametrize(("texts", "comment", "notify", "robot"), [
    (notices.RU, f"[b24relay] Сделка передана в ESB: создана сделка {LINK}.",
     f"Сделка «Котёл» (#7) передана в ESB: создана сделка {LINK}.",
     "[b24relay] Сделка передана в ESB: создана сделка #501."),
    (notices.Texts("uk"), f"[b24relay] Угоду передано до ESB: створено угоду {LINK}.",
     f"Угоду «Котёл» (#7) передано до ESB: створено угоду {LINK}.",
     "[b24relay] Угоду передано до ESB: створено угоду #501."),
    (notices.Texts("en"), f"[b24relay] Sent to ESB: created deal {LINK}.",
     f"Deal «Котёл» (#7) sent to ESB: created deal {LINK}.", "[b24relay] Sent to ESB: created deal #501."),
])
def test_comment_and_notification_link_the_target_deal_in_the_sources_language(
        texts: notices.Texts, comment: str, notify: str, robot: str) -> None:
    payload = created(texts)
    assert payload["comment"] == f"{comment} [ref abc123]"  # deliver.py finds a sent comment by this marker
    assert payload["notify"] == {"user_id": "3", "message": notify}
    values = payload["robots"]["return_values"]  # the robot's keys stay; its text is plain (no BB-code)
    assert values == {"target_deal_id": "501", "target_deal_url": URL, "result": "created", "status": "created",
                      "message": robot}
    assert payload["robots"]["log_message"] == robot


def test_an_update_and_skipped_files_are_told_too() -> None:
    files = notices.skipped_files([Skipped("UF_CRM_FILES", "huge.bin", 99, "over the 10 MiB limit")])
    assert files == "Не переданы файлы: huge.bin (over the 10 MiB limit)."
    payload = notices.success_notice(action="updated", deal=DEAL, target_deal_id="501", target_portal="esb.bitrix24.ru",
                                     ref="r1", note=files)
    assert payload["comment"] == f"[b24relay] Сделка {LINK} в ESB обновлена.\n{files} [ref r1]"
    assert payload["notify"]["message"] == f"Сделка «Котёл» (#7): сделка {LINK} в ESB обновлена.\n{files}"


def test_a_source_overrides_texts_by_name_and_keeps_the_other_defaults() -> None:
    texts = notices.Texts("uk", {"created": "Готово: {title} -> {target_link} ({target_url}, {target_portal})",
                                 "notify_created": "{{b24relay}} #{deal_id} = #{target_id}"})
    payload = created(texts)
    assert payload["comment"] == f"Готово: Котёл -> {LINK} ({URL}, esb.bitrix24.ru) [ref abc123]"
    assert payload["notify"]["message"] == "{b24relay} #7 = #501"
    assert payload["robots"]["log_message"] == f"Готово: Котёл -> #501 ({URL}, esb.bitrix24.ru)"
    updated = notices.success_notice(action="updated", deal=DEAL, target_deal_id="501", target_portal="esb.bitrix24.ru",
                                     texts=texts)
    assert updated["comment"] == f"[b24relay] Угоду {LINK} в ESB оновлено."


def test_the_url_is_built_like_deal_url_also_for_a_host_with_a_port() -> None:
    payload = notices.success_notice(action="created", deal=DEAL, target_deal_id="5", target_portal="127.0.0.1:8080")
    assert "[url=https://127.0.0.1:8080/crm/deal/details/5/]#5[/url]" in payload["comment"]
    assert notices.link("", "#5") == "#5"  # no portal known: plain text, never an empty [url=]


def test_failures_say_what_to_do_and_keep_the_reason_in_english() -> None:
    reason = "target refused the deal: STAGE_ID C3:NO_SUCH_STAGE is not a stage of the funnel"
    ru = notices.failure_notice(deal_id="7", reason=reason, deal=DEAL, event_tokens=["t"], comment=True, ref="f1")
    assert ru is not None and ru["comment"].startswith("[b24relay] Не удалось передать сделку в ESB. Если причина")
    assert ru["comment"].endswith(f"Причина: {reason} [ref f1]") and "notify" not in ru
    assert ru["robots"]["return_values"]["status"] == "error" and reason in ru["robots"]["return_values"]["message"]
    uk = notices.failure_notice(deal_id="7", reason=reason, deal=DEAL, comment=True, texts=notices.Texts("uk"))
    assert uk is not None and uk["comment"].startswith("[b24relay] Не вдалося передати угоду до ESB.")
    en = notices.failure_notice(deal_id="7", reason=reason, deal=None, comment=True, texts=notices.Texts("en"))
    assert en is not None and "correct it" in en["comment"] and en["comment"].endswith(f"Reason: {reason}")


def test_robot_answers_for_unchanged_and_skipped_deals() -> None:
    same = notices.robot_notice(deal_id="7", event_tokens=["t"], status="unchanged", target_deal_id="501",
                                target_portal="esb.bitrix24.ru")
    assert same is not None and same["robots"]["log_message"] == "[b24relay] Сделка #501 в ESB уже актуальна."
    assert same["robots"]["return_values"]["target_deal_url"] == URL
    skipped = notices.robot_notice(deal_id="7", event_tokens=["t"], status="skipped",
                                   reason="stage C1:NEW is not a trigger stage", texts=notices.Texts("en"))
    assert skipped is not None
    assert skipped["robots"]["log_message"] == "[b24relay] Not sent to ESB: stage C1:NEW is not a trigger stage."


def test_the_integrator_alert_links_the_source_deal_and_the_cockpit_in_notify_language() -> None:
    payload = notices.alert(user_id="17", source_id="p", deal_id="7", reason="boom", quiet=900, language="uk",
                            source_deal_url="https://p.bitrix24.ua/crm/deal/details/7/",
                            cockpit_url="https://relay.example.com/cockpit/")
    text = payload["alert"]["message"]
    assert text.startswith("[b24relay] Угоду [url=https://p.bitrix24.ua/crm/deal/details/7/]#7[/url] джерела p "
                           "не передано: boom\n")
    assert "`relay replay --dead --source p`" in text and "15 хв" in text
    assert text.endswith("\n[url=https://relay.example.com/cockpit/]Панель b24relay[/url]")
    onec = notices.alert(user_id="17", source_id="main", deal_id="invoice:0001:2024", reason="x", quiet=0,
                         language="en")["alert"]["message"]
    assert onec == ("[b24relay] 1C record invoice:0001:2024 of base main could not be relayed: x\n"
                    "Fix the cause, then `relay replay --dead --source main`.")


@pytest.mark.parametrize(("name", "text", "why"), [
    ("created", "Done {target_idd}", "unknown placeholder {target_idd}"),
    ("failed", "{target_link}", "unknown placeholder {target_link}"),
    ("created", "{target_id", "malformed template"),
    ("created", "}", "malformed template"),
    ("created", "{0}", "unknown placeholder {0}"),
    ("created", "{}", "unknown placeholder {}"),
    ("created", "{title.__class__}", "unknown placeholder {title.__class__}"),
    ("created", "{target_id:d}", "malformed template"),
    ("finished", "x", "unknown message 'finished'"),
])
def test_bad_templates_are_named(name: str, text: str, why: str) -> None:
    assert why in (notices.template_problem(name, text) or "")


def write(tmp_path: Path, source_lines: str, top: str = "") -> Path:
    (tmp_path / "m.yaml").write_text((Path(__file__).parents[1] / "config/mappings/partner.yaml").read_text())
    path = tmp_path / "relay.yaml"
    path.write_text(f"""target: {{webhook_url: "https://esb.example/rest/1/abcdefgh/"}}
sources:
  - id: p
    webhook_url: "https://p.example/rest/1/abcdefgh/"
    mapping: m.yaml
{source_lines}{top}""")
    return path


def test_language_messages_and_quiet_after_load_from_relay_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "    language: uk\n    quiet_after: 3600\n    messages:\n"
                           "      created: \"Створено {target_link}\"\n", "notify: {language: en}\n")
    config = load_config(path, {})
    source = config.source("p")
    assert source is not None and source.quiet_after == 3600 and config.file.notify.language == "en"
    assert source.texts == notices.Texts("uk", {"created": "Створено {target_link}"})
    default = load_config(write(tmp_path, ""), {})
    assert default.source("p").texts == notices.RU and default.source("p").quiet_after is None  # type: ignore[union-attr]


def test_bad_messages_are_configuration_errors_with_file_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "    messages:\n      created: \"Done {target_idd}\"\n      updated: \"{target_link\"\n"
                           "      nope: x\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    text = str(caught.value)
    assert f"{path}: sources[0].messages.created (line 7): unknown placeholder {{target_idd}}" in text
    assert f"{path}: sources[0].messages.updated (line 8): malformed template" in text
    assert f"{path}: sources[0].messages.nope (line 9): unknown message 'nope'" in text


@pytest.mark.parametrize(("lines", "where"), [
    ("    language: de\n", "sources[0].language (line 6)"),
    ("    quiet_after: 0\n", "sources[0].quiet_after (line 6)"),
    ("", "notify.language (line 7)"),
])
def test_unknown_language_or_bad_quiet_after_is_refused(tmp_path: Path, lines: str, where: str) -> None:
    path = write(tmp_path, lines, "" if lines else "notify:\n  language: pl\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert f"{path}: {where}: " in str(caught.value)
