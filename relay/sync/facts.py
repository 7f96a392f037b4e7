"""Read what a mapping refers to from one portal: fields, funnels and stages, users, products, presets.

``relay mapping check`` and ``relay mapping init`` compare two portals through these facts.  Every
read goes through :class:`~relay.portal.client.PortalClient` (so through the portal's pacer) and the
first round is one ``batch``:

* ``crm.deal.fields`` / ``crm.company.fields`` / ``crm.contact.fields`` — type, ``isReadOnly``,
  ``isImmutable``, ``isRequired``, ``isMultiple``, ``items`` of ``enumeration`` fields; custom fields
  carry their code in ``title`` and the label in ``listLabel`` / ``formLabel``
  (``api-reference/crm/deals/crm-deal-fields.md``, ``api-reference/crm/data-types.md``);
* ``crm.category.list`` ``entityTypeId`` 2 — the deal funnels
  (``api-reference/crm/universal/category/crm-category-list.md``), then one ``crm.status.list`` per
  funnel filtered by ``ENTITY_ID`` ``DEAL_STAGE`` / ``DEAL_STAGE_<id>`` (the whole list, no paging —
  ``api-reference/crm/status/crm-status-list.md``);
* ``user.get`` — ``ID``, ``ACTIVE``, ``EMAIL``, names, 50 a page (``api-reference/user/user-get.md``);
  ``user.current`` — the webhook's (or application's) user (``api-reference/user/user-current.md``);
* ``crm.product.list`` — ``ID``, ``NAME``, ``XML_ID`` (``api-reference/crm/outdated/products/crm-product-list.md``);
  only the ids asked for (``@ID``, 50 a command: a page holds 50) unless ``all_products``;
* ``crm.requisite.preset.list`` (``api-reference/crm/requisites/presets/crm-requisite-preset-list.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from relay.errors import RelayError
from relay.mapping.facts import PortalFacts, StageFacts, parse_fields, parse_user
from relay.portal.client import PortalClient
from relay.portal.protocol import MAX_BATCH, Command

PAGE = 50


def _stage_entity(category: str) -> str:
    return "DEAL_STAGE" if category == "0" else f"DEAL_STAGE_{category}"


def read_facts(client: PortalClient, *, products: Collection[str] = (), all_products: bool = False,
               progress: Callable[[str], None] | None = None) -> PortalFacts:
    """Read the facts of one portal (``products``: the catalog ids to look up)."""
    say = progress or (lambda _text: None)
    facts = PortalFacts()
    first: dict[str, Command] = {
        "deal": Command("crm.deal.fields"),
        "company": Command("crm.company.fields"),
        "contact": Command("crm.contact.fields"),
        "funnels": Command("crm.category.list", {"entityTypeId": 2}),
        "me": Command("user.current"),
        "users": Command("user.get", {"start": 0}),
        "presets": Command("crm.requisite.preset.list", {"select": ["ID", "NAME"]}),
    }
    wanted = sorted({p for p in products if p.isdigit() and p != "0"}, key=int)
    if all_products:
        first["products"] = Command("crm.product.list", {"select": ["ID", "NAME", "XML_ID"], "order": {"ID": "ASC"},
                                                         "start": 0})
    say("reading fields, funnels, users and presets")
    reply = client.batch(first, write=False)
    for name, err in reply.errors.items():
        facts.unread[name] = str(err)
    facts.deal_fields = parse_fields(reply.results.get("deal"))
    facts.company_fields = parse_fields(reply.results.get("company"))
    facts.contact_fields = parse_fields(reply.results.get("contact"))
    cats = reply.results.get("funnels") or {}
    for cat in (cats.get("categories") if isinstance(cats, Mapping) else None) or []:
        facts.funnels[str(cat.get("id"))] = str(cat.get("name") or "")
    me = reply.results.get("me")
    facts.current_user = str(me.get("ID", "")) if isinstance(me, Mapping) else ""
    for row in reply.results.get("presets") or []:
        facts.presets[str(row.get("ID"))] = str(row.get("NAME") or "")
    _users(client, facts, reply.results.get("users"), reply.totals.get("users"), say)
    _products(client, facts, reply.results.get("products"), reply.totals.get("products"), all_products, say)
    # second round: each funnel's stages, and the catalog ids asked for (a page holds 50: one command per 50)
    second = {f"s{cat}": Command("crm.status.list", {"filter": {"ENTITY_ID": _stage_entity(cat)},
                                                    "order": {"SORT": "ASC"}}) for cat in facts.funnels}
    if not all_products:
        second |= {f"p{n}": Command("crm.product.list", {"select": ["ID", "NAME", "XML_ID"],
                                                          "filter": {"@ID": wanted[n:n + PAGE]}})
                   for n in range(0, len(wanted), PAGE)}
    names = list(second)
    for start in range(0, len(names), MAX_BATCH):
        part = names[start:start + MAX_BATCH]
        reply = client.batch({n: second[n] for n in part}, write=False)
        for name in part:
            if name in reply.errors:
                facts.unread["products" if name[0] == "p" else f"stages of funnel {name[1:]}"] = str(reply.errors[name])
            elif name[0] == "p":
                _products(client, facts, reply.results.get(name), None, False, say)
            else:
                for row in reply.results.get(name) or []:
                    facts.stages[str(row.get("STATUS_ID"))] = StageFacts(str(row.get("STATUS_ID")), name[1:],
                                                                         str(row.get("NAME") or ""))
    return facts


def _more(client: PortalClient, method: str, params: Mapping[str, Any], got: int, total: int | None,
          say: Callable[[str], None], what: str) -> list[Any]:
    """The pages after the first of a list method (``start`` = rows read so far)."""
    rows: list[Any] = []
    while total is not None and got + len(rows) < total:
        say(f"reading {what}: {got + len(rows)} of {total}")
        try:
            page = client.call(method, {**params, "start": got + len(rows)})
        except RelayError:
            break
        if not isinstance(page, list) or not page:
            break
        rows += page
    return rows


def _users(client: PortalClient, facts: PortalFacts, first: Any, total: int | None,
           say: Callable[[str], None]) -> None:
    rows = list(first or [])
    rows += _more(client, "user.get", {}, len(rows), total, say, "users")
    for row in rows:
        if isinstance(row, Mapping):
            user = parse_user(row)
            facts.users[user.id] = user


def _products(client: PortalClient, facts: PortalFacts, first: Any, total: int | None, all_products: bool,
              say: Callable[[str], None]) -> None:
    rows = list(first or [])
    if all_products:
        rows += _more(client, "crm.product.list", {"select": ["ID", "NAME", "XML_ID"], "order": {"ID": "ASC"}},
                      len(rows), total, say, "products")
    for row in rows:
        if isinstance(row, Mapping):
            facts.products[str(row.get("ID"))] = (str(row.get("NAME") or ""), str(row.get("XML_ID") or ""))
