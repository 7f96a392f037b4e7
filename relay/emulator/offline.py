"""Pure: the offline event queue of an emulated portal (``event.offline.*`` work on it).

Documented — ``api-reference/events/offline-events.md``, ``event-offline-get.md``,
``event-offline-clear.md``, ``event-offline-error.md``, ``event-offline-list.md``:

* the queue keeps the latest state per object, not its history (1000 edits of a deal = one record
  with the time of the last change); a record is ``ID``, ``TIMESTAMP_X``, ``EVENT_NAME``,
  ``EVENT_DATA``, ``EVENT_ADDITIONAL``, ``MESSAGE_ID`` (``event.offline.list`` adds ``PROCESS_ID``, ``ERROR``);
* the queue is divided by source key (``auth_connector``): a method sees only the records of the
  connector it is called with ("otherwise only events without a source");
* ``get`` returns the first records (``order`` default ``TIMESTAMP_X`` ASC, ``limit`` default 50),
  deleting them (``clear=1``) or reserving them under a new ``process_id`` (``clear=0``); parallel
  calls get disjoint sets; ``process_id`` given = re-select that reservation; ``error=1`` = the
  erroneous records; ``clear`` deletes a reservation (or the ``message_id``/``id`` listed);
  ``error`` marks records as erroneous.

How, per the Bitrix24 ``rest`` module source (``Bitrix\\Rest\\EventOfflineTable``,
``Bitrix\\Rest\\Api\\Event``; not in the docs, so UNVERIFIED as a contract):

* ``MESSAGE_ID`` = md5 of ``EVENT_NAME|json(EVENT_DATA)``; a record merges into the unreserved one with
  the same (application, connector, ``MESSAGE_ID``) — so ``ONCRMDEALADD`` and ``ONCRMDEALUPDATE`` of one
  deal are two records, and a change to a reserved object makes a new, unreserved record;
* ``error`` on a reserved record makes it unreserved with ``ERROR=1`` and drops other copies of the
  same ``MESSAGE_ID``; a later change to that object updates the erroneous record (it stays erroneous).

The content of ``EVENT_DATA`` for deals (``{"FIELDS": {"ID": <int>}}``, like the online event's
``data``) and ``EVENT_ADDITIONAL`` (``{"user_id": <int>}``) is UNVERIFIED: the docs' examples show ``false``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from relay.emulator.config import random_token
from relay.emulator.listing import compile_filter
from relay.emulator.values import iso, php_str, sort_key

GET_FIELDS = ("ID", "TIMESTAMP_X", "EVENT_NAME", "MESSAGE_ID")
LIST_FIELDS = (*GET_FIELDS, "PROCESS_ID", "ERROR")
PAGE_SIZE = 50


def message_id(event: str, data: Any) -> str:
    """``md5(EVENT_NAME|json(EVENT_DATA))`` (PHP ``Json::encode``: no spaces)."""
    encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return hashlib.md5(f"{event}|{encoded}".encode()).hexdigest()


@dataclass
class OfflineRecord:
    """One queued change of one application's queue (``connector`` "" = without a source key)."""

    id: int
    client_id: str
    connector: str
    event_name: str
    event_data: Any
    event_additional: Any
    message_id: str
    timestamp: datetime
    process_id: str = ""
    error: int = 0

    def view(self, *, listing: bool = False) -> dict[str, Any]:
        """The record as ``event.offline.get`` (or ``.list``, with ``PROCESS_ID``/``ERROR``) shows it."""
        row: dict[str, Any] = {
            "ID": str(self.id), "TIMESTAMP_X": iso(self.timestamp), "EVENT_NAME": self.event_name,
            "EVENT_DATA": self.event_data, "EVENT_ADDITIONAL": self.event_additional, "MESSAGE_ID": self.message_id,
        }
        if listing:
            row.update({"PROCESS_ID": self.process_id, "ERROR": str(self.error)})
        return row

    def column(self, name: str) -> Any:
        """A filter/order column."""
        return {"ID": self.id, "TIMESTAMP_X": iso(self.timestamp), "EVENT_NAME": self.event_name,
                "MESSAGE_ID": self.message_id, "PROCESS_ID": self.process_id, "ERROR": self.error}.get(name)


class OfflineQueue:
    """All offline records of a portal, every application and connector."""

    def __init__(self) -> None:
        self.records: list[OfflineRecord] = []
        self._next = 0

    def add(self, client_id: str, connector: str, event: str, data: Any, additional: Any,
            now: datetime) -> OfflineRecord:
        """Queue a change, merging into the unreserved record of the same object."""
        mid = message_id(event, data)
        for record in self.records:
            if (record.client_id, record.connector, record.message_id, record.process_id) == (
                    client_id, connector, mid, ""):
                record.timestamp, record.event_data, record.event_additional = now, data, additional
                return record
        self._next += 1
        record = OfflineRecord(self._next, client_id, connector, event, data, additional, mid, now)
        self.records.append(record)
        return record

    def _mine(self, client_id: str, connector: str) -> list[OfflineRecord]:
        return [r for r in self.records if r.client_id == client_id and r.connector == connector]

    def get(self, client_id: str, connector: str, *, flt: Any, order: Any, limit: int, clear: bool,
            process_id: str | None, errors: bool, tz: timezone) -> dict[str, Any]:
        """``event.offline.get``: reserve (or re-select) a batch, return it, delete it when ``clear``."""
        matches = _filter(flt, GET_FIELDS, tz)
        mine = [r for r in self._mine(client_id, connector) if r.error == int(errors) and matches(r)]
        ordered = _sorter(order, GET_FIELDS, "TIMESTAMP_X", tz)
        return_id = process_id is not None or not clear
        if process_id is None:
            process_id = random_token(32)
            for record in ordered([r for r in mine if r.process_id == ""])[:limit]:
                record.process_id = process_id
        batch = ordered([r for r in mine if r.process_id == process_id])[:limit]
        events = [r.view() for r in batch]
        if clear and events:
            self.clear(client_id, connector, process_id)
        return {"process_id": process_id if return_id else None, "events": events}

    def clear(self, client_id: str, connector: str, process_id: str, *, ids: list[int] | None = None,
              message_ids: list[str] | None = None) -> None:
        """``event.offline.clear``: delete a reservation, or only the listed ``ID``s / ``MESSAGE_ID``s of it."""
        def gone(r: OfflineRecord) -> bool:
            if (r.client_id, r.connector, r.process_id) != (client_id, connector, process_id):
                return False
            if message_ids is not None:
                return r.message_id in message_ids
            return ids is None or r.id in ids

        self.records = [r for r in self.records if not gone(r)]

    def mark_error(self, client_id: str, connector: str, process_id: str, message_ids: list[str]) -> None:
        """``event.offline.error``: the reserved copy becomes an unreserved erroneous record; other copies go."""
        hit = [r for r in self._mine(client_id, connector) if r.message_id in message_ids and r.error == 0]
        drop = {r.id for r in hit if r.process_id != process_id}
        for record in hit:
            record.process_id, record.error = "", 1
        survivors: list[OfflineRecord] = []
        erroneous: dict[str, OfflineRecord] = {}
        for record in self.records:
            if record.id in drop:
                continue
            mine = (record.client_id, record.connector) == (client_id, connector)
            if mine and record.error and not record.process_id:
                first = erroneous.setdefault(record.message_id, record)
                if first is not record:  # one erroneous record per object (the table's unique key)
                    first.timestamp = max(first.timestamp, record.timestamp)
                    continue
            survivors.append(record)
        self.records = survivors

    def listing(self, client_id: str, connector: str, *, flt: Any, order: Any, start: int,
                tz: timezone) -> tuple[list[dict[str, Any]], int]:
        """``event.offline.list``: one 50-record page (``order`` default ``ID`` ASC) and the total."""
        matches = _filter(flt, LIST_FIELDS, tz)
        found = _sorter(order, LIST_FIELDS, "ID", tz)([r for r in self._mine(client_id, connector) if matches(r)])
        return [r.view(listing=True) for r in found[start:start + PAGE_SIZE]], len(found)

    def drop_app(self, client_id: str) -> None:
        """Forget the queue of an uninstalled application."""
        self.records = [r for r in self.records if r.client_id != client_id]


def _filter(raw: Any, fields: tuple[str, ...], tz: timezone) -> Callable[[OfflineRecord], bool]:
    """``filter`` over the allowed fields (operator before the name, e.g. ``>ID``); others are ignored."""
    test = compile_filter(raw, tz, lambda name: name in fields, lambda row, name: row[name],
                          lambda name: name in ("EVENT_NAME", "MESSAGE_ID", "PROCESS_ID"))
    return lambda record: test({name: record.column(name) for name in fields})


def _sorter(raw: Any, fields: tuple[str, ...], default: str,
            tz: timezone) -> Callable[[list[OfflineRecord]], list[OfflineRecord]]:
    """``order`` ``{field: ASC|DESC}`` over the allowed fields, then ``ID``; unknown fields are ignored."""
    rules = [(str(k).upper(), php_str(v).upper() == "DESC") for k, v in raw.items()] \
        if isinstance(raw, Mapping) and raw else [(default, False)]
    rules = [(name, desc) for name, desc in rules if name in fields] or [(default, False)]

    def ordered(records: list[OfflineRecord]) -> list[OfflineRecord]:
        out = sorted(records, key=lambda r: r.id)
        for name, desc in reversed(rules):  # stable sorts: the first rule decides, ``ID`` breaks ties
            out.sort(key=_column_key(name, tz), reverse=desc)
        return out

    return ordered


def _column_key(name: str, tz: timezone) -> Callable[[OfflineRecord], tuple[int, Any]]:
    return lambda record: sort_key(record.column(name), tz)
