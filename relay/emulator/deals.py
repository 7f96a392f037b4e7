"""Creating and changing deals with Bitrix24's typing, defaults and validation.

Defaults and writable fields — ``api-reference/crm/deals/crm-deal-add.md``; partial update,
unknown fields ignored, funnel immutable — ``api-reference/crm/deals/crm-deal-update.md``;
output typing (strings, ``Y``/``N``, ISO dates, ``null`` links) — ``crm-deal-get.md``.

Empty values: an empty date reads back as ``""`` (b24phpsdk ``AbstractCrmItem`` tests dates only
against ``''``; ``api-reference/crm/leads/crm-lead-list.md`` shows ``"BIRTHDATE": ""``); a date is
cleared by writing ``""`` (or ``null`` in a JSON body).  A save of a deal with rows and
``IS_MANUAL_OPPORTUNITY`` ``N`` recomputes ``OPPORTUNITY`` (:func:`relay.emulator.rows.automatic_amount`).

Required fields (``PortalConfig.required_fields``, ``isRequired`` in ``crm.deal.fields``): an add that
leaves one empty, or an update that empties one, is refused and stores nothing.  UNVERIFIED: the legacy
answer, 400 with an empty code (like every documented ``crm.deal.add`` error, ``crm-deal-add.md``) and
``The "<label>" field (<CODE>) is required.``; ``crm.item.*`` answers ``CRM_FIELD_ERROR_REQUIRED``
``The "<label>" field is required`` as ``api-reference/crm/universal/import/crm-item-batch-import.md``
shows.  Seeding by a test (``trusted``) is not checked: a deal "made before the field was required".
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Any

from relay.emulator import files
from relay.emulator.core import EmuError, validation
from relay.emulator.rows import automatic_amount
from relay.emulator.schema import SEEDABLE, STANDARD, VISIBLE, label
from relay.emulator.state import PortalState
from relay.emulator.uf import convert_uf, empty_uf, is_blank
from relay.emulator.values import floatval, intval, iso, parse_datetime, php_str

_YES = {"Y", "y", "1", "true", "TRUE", "True"}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return "Array" if isinstance(value, (list, dict)) else php_str(value)


def _convert(state: PortalState, name: str, kind: str, value: Any) -> Any:
    """Turn one incoming standard-field value into its stored (output) form."""
    if kind in ("str", "stage"):
        return _text(value)
    if kind == "int":
        return None if value in (None, "") else str(intval(value))
    if kind == "link":
        number = intval(value)
        return str(number) if number > 0 else None
    if kind == "money":
        return f"{floatval(value):.2f}"
    if kind == "yn":
        return "Y" if value is True or php_str(value) in _YES else "N"
    if kind in ("date", "datetime"):
        if is_blank(value):
            return ""  # cleared; crm.deal.get gives "" for an empty date
        moment = parse_datetime(value, state.tz)
        if moment is None:
            raise validation(f"Field '{name}' has an invalid date value '{php_str(value)}'")
        if kind == "date":
            moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return iso(moment.replace(microsecond=0))
    if kind == "currency":
        code = php_str(value).upper()
        if code not in state.config.currencies:
            raise validation(f"Currency '{php_str(value)}' is not found")
        return code
    if kind == "user":
        user = intval(value)
        if user not in state.config.users:
            raise validation(f"User with ID '{php_str(value)}' is not found")
        return str(user)
    if kind == "category":
        category = intval(value)
        if php_str(value).strip() not in ("", str(category)) or category not in state.config.categories:
            raise validation(f"Category '{php_str(value)}' is not found")
        return str(category)
    raise AssertionError(f"unhandled field kind {kind}")


def clean_fields(state: PortalState, fields: Any, *, trusted: bool = False) -> dict[str, Any]:
    """Keep the writable standard fields and configured ``UF_CRM_*`` fields, converted.

    Unknown keys (including lower-case spellings) are silently ignored, like Bitrix24 —
    ``api-reference/crm/deals/crm-deal-update.md``.  ``trusted`` (test seeding) may also set
    :data:`relay.emulator.schema.SEEDABLE` read-only fields.
    """
    if fields in (None, "", []):
        return {}
    if not isinstance(fields, Mapping):
        raise validation("Parameter 'fields' must be array.")
    out: dict[str, Any] = {}
    for name, value in fields.items():
        spec = STANDARD.get(name)
        if spec is not None:
            if spec.read_only and not (trusted and name in SEEDABLE):
                continue
            if spec.kind == "ids":
                ids = value if isinstance(value, list) else [value]
                first = next((intval(v) for v in ids if intval(v) > 0), 0)
                if first and "CONTACT_ID" not in fields:
                    out["CONTACT_ID"] = str(first)
                continue
            out[name] = _convert(state, name, spec.kind, value)
        elif name in state.config.uf_fields:  # file values are resolved per deal by files.resolve
            out[name] = value if files.is_file_field(state, name) else convert_uf(state, name, value)
    return out


def _check_stage(state: PortalState, stage: Any, category: int) -> None:
    if stage not in state.stages(category):
        raise validation(f"Stage '{php_str(stage)}' is not found in category {category}")


def _derive(state: PortalState, record: dict[str, Any]) -> None:
    """Stage-dependent fields: ``STAGE_SEMANTIC_ID`` (P/S/F), ``CLOSED``, ``IS_NEW``."""
    stage = str(record["STAGE_ID"])
    status = stage.rsplit(":", 1)[-1]
    semantic = "S" if status == "WON" else "F" if status in ("LOSE", "APOLOGY") else "P"
    record["STAGE_SEMANTIC_ID"] = semantic
    record["CLOSED"] = "N" if semantic == "P" else "Y"
    stages = state.stages(int(record["CATEGORY_ID"]))
    record["IS_NEW"] = "Y" if stages and stage == stages[0] else "N"


def _defaults(state: PortalState, deal_id: int, category: int) -> dict[str, Any]:
    now = state.now()
    today = now.replace(hour=0, minute=0, second=0)
    user = str(state.config.user_id)
    record: dict[str, Any] = dict.fromkeys(VISIBLE)
    record.update({
        "ID": str(deal_id), "TITLE": f"Deal #{deal_id}", "TYPE_ID": "SALE",
        "STAGE_ID": state.stages(category)[0], "CURRENCY_ID": state.config.currency,
        "OPPORTUNITY": "0.00", "IS_MANUAL_OPPORTUNITY": "N", "TAX_VALUE": "0.00",
        "BEGINDATE": iso(today), "CLOSEDATE": iso(today + timedelta(days=7)),
        "ASSIGNED_BY_ID": user, "CREATED_BY_ID": user, "MODIFY_BY_ID": user,
        "DATE_CREATE": iso(now), "DATE_MODIFY": iso(now), "OPENED": "Y", "CLOSED": "N",
        "CATEGORY_ID": str(category), "IS_RECURRING": "N", "IS_RETURN_CUSTOMER": "N",
        "IS_REPEATED_APPROACH": "N", "SOURCE_ID": "CALL", "MOVED_BY_ID": user,
        "MOVED_TIME": iso(now), "LAST_ACTIVITY_TIME": iso(now), "LAST_ACTIVITY_BY": user,
    })
    for name in state.config.uf_fields:
        record[name] = empty_uf(state, name)
    return record


def _empty(value: Any) -> bool:
    """Blank for a required field: nothing, ``""``, only spaces, or a list of those (UNVERIFIED: the spaces)."""
    if isinstance(value, list):
        return all(_empty(v) for v in value)
    return is_blank(value) or (isinstance(value, str) and not value.strip())


def check_required(state: PortalState, record: Mapping[str, Any], names: Collection[str],
                   file_style: str = "legacy") -> None:
    """Refuse when a required field among ``names`` is empty in ``record`` (module docstring)."""
    missing = [n for n in state.config.required_fields if n in names and _empty(record.get(n))]
    if not missing:
        return
    if file_style == "item":
        raise EmuError(400, "CRM_FIELD_ERROR_REQUIRED",
                       "; ".join(f'The "{label(state.config, n)}" field is required' for n in missing))
    raise validation(" ".join(f'The "{label(state.config, n)}" field ({n}) is required.' for n in missing))


def create_deal(state: PortalState, fields: Any, *, trusted: bool = False, file_style: str = "legacy") -> int:
    """Validate and store a new deal; returns its id — ``api-reference/crm/deals/crm-deal-add.md``.

    ``file_style`` is ``legacy`` (``fileData`` objects) or ``item`` (``crm.item.*`` arrays), see :mod:`files`.
    """
    clean = clean_fields(state, fields, trusted=trusted)
    category = int(clean.pop("CATEGORY_ID", state.config.default_category()))
    if "STAGE_ID" in clean:
        _check_stage(state, clean["STAGE_ID"], category)
    if not trusted:  # the defaults of a deal not yet numbered fill what the call leaves out
        check_required(state, {**_defaults(state, 0, category), **clean}, state.config.required_fields, file_style)
    deal_id = state.next_id("deal")
    files.resolve(state, deal_id, None, clean, file_style)
    record = _defaults(state, deal_id, category)
    record.update(clean)
    _derive(state, record)
    state.deals[deal_id] = record
    state.rows.setdefault(deal_id, [])
    state.changes.append(("ONCRMDEALADD", deal_id))
    return deal_id


def update_deal(state: PortalState, deal_id: int, fields: Any, *, trusted: bool = False,
                actor: int | None = None, file_style: str = "legacy") -> None:
    """Change only the given fields; ``CATEGORY_ID`` is ignored — ``crm-deal-update.md``."""
    old = state.deal(deal_id)
    clean = clean_fields(state, fields, trusted=trusted)
    clean.pop("CATEGORY_ID", None)  # funnel changes need crm.item.update — crm-deal-update.md
    category = int(old["CATEGORY_ID"])
    if "STAGE_ID" in clean:
        _check_stage(state, clean["STAGE_ID"], category)
    if not trusted:  # UNVERIFIED: only the fields the call names are checked
        check_required(state, clean, clean, file_style)
    files.resolve(state, deal_id, old, clean, file_style)
    record = {**old, **clean}
    now = iso(state.now())
    user = str(actor if actor is not None else state.config.user_id)
    if record["STAGE_ID"] != old["STAGE_ID"]:
        record["MOVED_TIME"], record["MOVED_BY_ID"] = now, user
    if "DATE_MODIFY" not in clean:
        record["DATE_MODIFY"] = now
    if "MODIFY_BY_ID" not in clean:
        record["MODIFY_BY_ID"] = user
    total = automatic_amount(state, record)  # "after saving" — see the module docstring
    if total is not None:
        record["OPPORTUNITY"] = total
    _derive(state, record)
    state.deals[deal_id] = record
    state.changes.append(("ONCRMDEALUPDATE", deal_id))


def move_deal(state: PortalState, deal_id: int, category: int, stage: str | None = None) -> None:
    """A user moves a deal to another funnel: fires ``ONCRMDEALMOVETOCATEGORY``, **not**
    ``ONCRMDEALUPDATE`` — ``api-reference/crm/deals/events/on-crm-deal-move-to-category.md``."""
    old = state.deal(deal_id)
    stage = stage or state.stages(category)[0]
    _check_stage(state, stage, category)
    now = iso(state.now())
    record = {**old, "CATEGORY_ID": str(category), "STAGE_ID": stage, "MOVED_TIME": now, "DATE_MODIFY": now}
    _derive(state, record)
    state.deals[deal_id] = record
    state.changes.append(("ONCRMDEALMOVETOCATEGORY", deal_id))


def delete_deal(state: PortalState, deal_id: int) -> None:
    """Remove a deal and its rows — ``api-reference/crm/deals/crm-deal-delete.md``."""
    state.deal(deal_id)
    del state.deals[deal_id]
    state.rows.pop(deal_id, None)
    files.drop_owner(state, deal_id)
    state.changes.append(("ONCRMDEALDELETE", deal_id))
