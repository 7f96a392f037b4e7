"""Find target deals by their link stamp: many stamps per ``crm.deal.list`` command, 50 commands a batch.

The stamp of a relayed deal is either a custom field ``UF_CRM_…`` holding
``"<member_id or source id>:<deal id>"`` or the pair ``ORIGINATOR_ID = "b24relay:<prefix>"`` +
``ORIGIN_ID = "<deal id>"`` (``api-reference/crm/deals/crm-deal-add.md``).  One command asks for up to
:data:`GROUP` stamps at once with the ``@`` (IN) filter prefix
(``api-reference/crm/deals/crm-deal-list.md``); a page holds 50 deals, so a full page is asked
again one stamp per command.  Every hit is checked against the stamp itself: Bitrix24 silently
ignores unknown filter fields, and a filter that was ignored would otherwise "find" any deal.
Hits come back oldest first (lowest ``ID``): the oldest copy is the one to keep.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from relay.errors import RelayError
from relay.portal.client import PortalClient
from relay.portal.protocol import MAX_BATCH, Command

ORIGIN_LINK = "ORIGIN_ID"
ORIGINATOR = "b24relay"
GROUP = 25  # stamps per crm.deal.list command: room for a few extra copies within one 50-deal page
PAGE = 50

Key = tuple[str, str]  # (source id, source deal id)


@dataclass(frozen=True)
class Wanted:
    """One source deal whose target copies are looked for."""

    key: Key
    field: str  # the mapping's link_field
    prefix: str  # the source's link prefix (member_id or source id)

    @property
    def stamp(self) -> dict[str, str]:
        """The fields (and values) that mark this deal's copy on the target."""
        return stamp(self.field, self.prefix, self.key[1])


def stamp(field: str, prefix: str, deal_id: str) -> dict[str, str]:
    """Stamp fields written on a target deal created for source deal ``deal_id``."""
    if field == ORIGIN_LINK:
        return {"ORIGINATOR_ID": f"{ORIGINATOR}:{prefix}", "ORIGIN_ID": deal_id}
    return {field: f"{prefix}:{deal_id}"}


def _command(items: Sequence[Wanted]) -> Command:
    first = items[0]
    if first.field == ORIGIN_LINK:
        flt: dict[str, Any] = {"=ORIGINATOR_ID": f"{ORIGINATOR}:{first.prefix}",
                               "@ORIGIN_ID": [w.key[1] for w in items]}
    else:
        flt = {f"@{first.field}": [w.stamp[first.field] for w in items]}
    return Command("crm.deal.list", {"filter": flt, "select": ["ID", *first.stamp], "order": {"ID": "ASC"}})


def _groups(wanted: Sequence[Wanted], size: int) -> Iterator[list[Wanted]]:
    by_kind: dict[tuple[str, str], list[Wanted]] = defaultdict(list)
    for w in wanted:
        by_kind[(w.field, w.prefix)].append(w)
    for items in by_kind.values():
        for i in range(0, len(items), size):
            yield items[i:i + size]


def _match(rows: Any, items: Sequence[Wanted]) -> dict[Key, list[str]]:
    """Target ids per wanted deal, oldest first, keeping only rows whose stamp really matches."""
    out: dict[Key, list[str]] = {w.key: [] for w in items}
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue
        for w in items:
            if all(str(row.get(k, "")) == v for k, v in w.stamp.items()):
                out[w.key].append(str(row.get("ID")))
    for ids in out.values():
        ids.sort(key=lambda i: int(i) if i.isdigit() else 0)
    return out


def find(client: PortalClient, wanted: Sequence[Wanted]) -> dict[Key, list[str] | RelayError]:
    """Target deal ids (oldest first) carrying each wanted stamp, or the error that hid the answer."""
    out: dict[Key, list[str] | RelayError] = {}
    again: list[Wanted] = []
    _run(client, list(_groups(wanted, GROUP)), out, again)
    if again:  # a full page may hide copies: ask for each of those stamps on its own
        _run(client, [[w] for w in again], out, [])
    return out


def _run(client: PortalClient, groups: list[list[Wanted]], out: dict[Key, list[str] | RelayError],
         again: list[Wanted]) -> None:
    for start in range(0, len(groups), MAX_BATCH):
        chunk = groups[start:start + MAX_BATCH]
        cmds = {f"s{n}": _command(items) for n, items in enumerate(chunk)}
        try:
            reply = client.batch(cmds, write=False)
        except RelayError as exc:
            out.update({w.key: exc for items in chunk for w in items})
            continue
        for n, items in enumerate(chunk):
            try:
                rows = reply.get(f"s{n}")
            except RelayError as exc:
                out.update({w.key: exc for w in items})
                continue
            if isinstance(rows, list) and len(rows) >= PAGE and len(items) > 1:
                again.extend(items)
                continue
            out.update(_match(rows, items))
