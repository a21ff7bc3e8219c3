"""Online aggregates: how one event changes an entity's stored state, and a reference replay.

The stream Lambda applies these functions to DynamoDB items; the Glue job computes the same state
in Spark for a whole history; `replay` walks a history in time order and is the reference both are
tested against. Aggregates are plain JSON-able dicts (ints, strings, lists) so DynamoDB stores them
as they are.

Customer aggregate:
    registered_at_ms       account creation time (from the customer profile), or None
    order_count            orders applied
    amount_sum_minor       sum of their amounts in minor units
    return_count           returns applied
    damaged_claims         returns with a damage / empty-box reason
    claims                 {claim type: returns with a reason of that type} (features.CLAIM_TYPES)
    first_return_ms        earliest return time, or None
    cod_refusals           cash-on-delivery orders refused at the door
    last_return_ms         latest return time, or None
    last_event_ms          latest order or return time applied
    addresses              {address_key: first time it was used}
    recent_orders          [[time_ms, order_id, amount_minor, address_key, returned_at_ms|None,
                             product_id, category], ...]
                           sorted by (time, order_id): the last 6 orders, plus every order within
                           an hour of last_event_ms (velocity)
    recent_returns         [[time_ms, reason_code], ...] sorted: returns within 30 days of last_event_ms
Product / seller / category / region aggregate:
    order_count, return_count, last_event_ms
    claim_count            returns with a damage or mismatch claim (features.SELLER_CLAIM_TYPES)
    first_order_ms         earliest order, or None
    price_bands            (categories) [orders per features.price_band, PRICE_BANDS long]
    amount_sum_minor       (categories) sum of their orders' amounts in minor units
    daily_orders           (sellers) [[UTC day number, orders], ...] sorted, the days within
                           SELLER_DAYS_KEPT of the latest
    buyers                 (sellers) distinct customers who ordered: the orders applied while the
                           order's customer_seller item counted no order yet (order_count - buyers:
                           the orders of a buyer who had bought from the seller before)
Customer-seller / customer-category items (key: features.pair_key of the customer and the seller id /
category; entities `customer_seller`, `customer_category`), a customer's history with one of them:
    order_count, return_count, last_event_ms
    claim_count            returns with a damage or mismatch claim (features.SELLER_CLAIM_TYPES)
Link items (keys: the normalised address's `address_key`, the card fingerprint, device id, phone hash,
IP prefix; the card's entity is `card_link`), links between accounts:
    customers              {customer_id: first time they ordered with it}, the earliest LINK_CAP
                           by (time, customer_id)
    last_event_ms          latest order with it
    returns                (once a return names the item) the earliest LINK_CAP returns of orders
                           delivered there / placed with it, by (time, return id):
                           [[time_ms, return_id, customer_id, claim 0/1], ...] (claim: a damage or
                           mismatch reason, features.SELLER_CLAIM_TYPES)
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from returnguard.calendar import DAY_MS
from returnguard.features import (
    CLAIM_TYPES,
    COD_REFUSAL_REASON_CODE,
    DAMAGE_REASON_CODES,
    ENTITY_GROUPS,
    LINK_CAP,
    LINK_IDENTIFIERS,
    LINK_ITEMS,
    PAIR_GROUPS,
    PRICE_BANDS,
    RECENT_ORDERS,
    RETURN_WINDOW_MS,
    SELLER_CLAIM_TYPES,
    SELLER_DAYS_KEPT,
    VELOCITY_LONG_MS,
    OrderContext,
    address_key,
    claim_types,
    compute_features,
    link_ids,
    pair_ids,
    pair_key,
    price_band,
)

Aggregate = dict[str, Any]


@dataclass(frozen=True)
class ReturnContext:
    """A return, with the order facts the aggregates need (the stream envelope carries them)."""

    return_id: str
    order_id: str
    customer_id: str
    product_id: str
    seller_id: str
    category: str
    region: str
    return_time_ms: int
    reason_code: str
    reason_text_key: str | None = None  # returnguard.returns.text_key of the request's reason text
    delivery_address: str | None = None  # the returned order's, when the return event carries it
    card_fingerprint: str | None = None  # the returned order's identifiers, when the event carries them
    device_id: str | None = None
    phone_hash: str | None = None
    ip_prefix: str | None = None

    @property
    def address_key(self) -> str | None:
        return None if not self.delivery_address else address_key(self.delivery_address)

    def pair_ids(self) -> dict[str, str]:
        """The customer's seller and category items this return counts on (features.pair_ids)."""
        return {
            group: pair_key(self.customer_id, value)
            for group, field_name in PAIR_GROUPS.items()
            if (value := getattr(self, field_name))
        }

    def link_ids(self) -> dict[str, str]:
        """The returned order's link items this return is remembered on (features.link_ids of the order,
        as far as the event names them)."""
        ids = {} if self.address_key is None else {"address": self.address_key}
        for group, field_name in LINK_IDENTIFIERS.items():
            value = getattr(self, field_name)
            if value:
                ids[group] = value
        return ids


def new_customer(registered_at_ms: int | None = None) -> Aggregate:
    return {
        "registered_at_ms": registered_at_ms,
        "order_count": 0,
        "amount_sum_minor": 0,
        "return_count": 0,
        "damaged_claims": 0,
        "claims": {claim: 0 for claim in CLAIM_TYPES},
        "cod_refusals": 0,
        "first_return_ms": None,
        "last_return_ms": None,
        "last_event_ms": 0,
        "addresses": {},
        "recent_orders": [],
        "recent_returns": [],
    }


def new_entity() -> Aggregate:
    return {"order_count": 0, "return_count": 0, "last_event_ms": 0, "claim_count": 0, "first_order_ms": None}


def new_pair() -> Aggregate:
    return {"order_count": 0, "return_count": 0, "claim_count": 0, "last_event_ms": 0}


def apply_order_to_pair(pair: Aggregate | None, order_time_ms: int) -> Aggregate:
    """One more order of the customer with the seller / in the category."""
    state = new_pair() if pair is None else pair
    state["order_count"] += 1
    state["last_event_ms"] = max(int(state["last_event_ms"]), order_time_ms)
    return state


def apply_return_to_pair(pair: Aggregate | None, ret: ReturnContext) -> Aggregate:
    """One more return (and claim, for a damage or mismatch reason) of the customer with it."""
    state = new_pair() if pair is None else pair
    state["return_count"] += 1
    if any(claim in SELLER_CLAIM_TYPES for claim in claim_types(ret.reason_code)):
        state["claim_count"] += 1
    state["last_event_ms"] = max(int(state["last_event_ms"]), ret.return_time_ms)
    return state


def new_link() -> Aggregate:
    return {"customers": {}, "last_event_ms": 0}


def apply_order_to_link(link: Aggregate | None, order: OrderContext) -> Aggregate:
    """Remember who ordered with this address / identifier and when first; keep the earliest LINK_CAP."""
    return _link(link, order.customer_id, order.order_time_ms)


def apply_return_to_link(link: Aggregate | None, ret: ReturnContext) -> Aggregate:
    """Remember a return of an order delivered here / placed with this identifier: the earliest
    LINK_CAP by (time, return id)."""
    state = new_link() if link is None else link
    claim = int(any(claim in SELLER_CLAIM_TYPES for claim in claim_types(ret.reason_code)))
    entry = [ret.return_time_ms, ret.return_id, ret.customer_id, claim]
    kept = sorted([*state.get("returns", []), entry], key=lambda r: (int(r[0]), str(r[1])))
    state["returns"] = kept[:LINK_CAP]
    return state


def apply_return_to_text(text: Aggregate | None, ret: ReturnContext) -> Aggregate:
    """A reason text's link item (key: its text_key): who sent it and when first, capped like addresses."""
    return _link(text, ret.customer_id, ret.return_time_ms)


def _link(item: Aggregate | None, customer_id: str, t: int) -> Aggregate:
    state = new_link() if item is None else item
    customers = state["customers"]
    first = customers.get(customer_id)
    if first is None or t < int(first):
        customers[customer_id] = t
    if len(customers) > LINK_CAP:
        kept = sorted(customers.items(), key=lambda c: (int(c[1]), c[0]))[:LINK_CAP]
        state["customers"] = dict(kept)
    state["last_event_ms"] = max(int(state["last_event_ms"]), t)
    return state


def apply_customer_profile(customer: Aggregate | None, registered_at_ms: int) -> Aggregate:
    state = new_customer() if customer is None else customer
    state["registered_at_ms"] = registered_at_ms
    return state


def apply_order_to_customer(customer: Aggregate | None, order: OrderContext) -> Aggregate:
    state = new_customer() if customer is None else customer
    t = order.order_time_ms
    state["order_count"] += 1
    state["amount_sum_minor"] += order.amount_minor
    key = order.address_key
    first_used = state["addresses"].get(key)
    if first_used is None or t < int(first_used):
        state["addresses"][key] = t
    state["recent_orders"].append(
        [t, order.order_id, order.amount_minor, key, None, order.product_id, order.category]
    )
    state["recent_orders"].sort(key=lambda o: (int(o[0]), str(o[1])))
    state["last_event_ms"] = max(int(state["last_event_ms"]), t)
    _prune(state)
    return state


def apply_return_to_customer(customer: Aggregate | None, ret: ReturnContext) -> Aggregate:
    state = new_customer() if customer is None else customer
    t = ret.return_time_ms
    state["return_count"] += 1
    if ret.reason_code in DAMAGE_REASON_CODES:
        state["damaged_claims"] += 1
    if ret.reason_code == COD_REFUSAL_REASON_CODE:
        state["cod_refusals"] += 1
    claims = state.setdefault("claims", {claim: 0 for claim in CLAIM_TYPES})
    for claim in claim_types(ret.reason_code):
        claims[claim] = int(claims.get(claim, 0)) + 1
    if state.get("first_return_ms") is None or t < int(state["first_return_ms"]):
        state["first_return_ms"] = t
    if state["last_return_ms"] is None or t > int(state["last_return_ms"]):
        state["last_return_ms"] = t
    for recent in state["recent_orders"]:
        if recent[1] == ret.order_id and (recent[4] is None or t < int(recent[4])):
            recent[4] = t
    state["recent_returns"].append([t, ret.reason_code])
    state["recent_returns"].sort(key=lambda r: (int(r[0]), str(r[1])))
    state["last_event_ms"] = max(int(state["last_event_ms"]), t)
    _prune(state)
    return state


def _prune(state: Aggregate) -> None:
    last = int(state["last_event_ms"])
    orders = state["recent_orders"]
    keep_from = max(0, len(orders) - RECENT_ORDERS)
    state["recent_orders"] = [
        o for i, o in enumerate(orders) if i >= keep_from or int(o[0]) >= last - VELOCITY_LONG_MS
    ]
    state["recent_returns"] = [r for r in state["recent_returns"] if int(r[0]) >= last - RETURN_WINDOW_MS]


def apply_order_to_entity(entity: Aggregate | None, order_time_ms: int) -> Aggregate:
    state = new_entity() if entity is None else entity
    state["order_count"] += 1
    if state.get("first_order_ms") is None or order_time_ms < int(state["first_order_ms"]):
        state["first_order_ms"] = order_time_ms
    state["last_event_ms"] = max(int(state["last_event_ms"]), order_time_ms)
    return state


def apply_order_to_category(entity: Aggregate | None, order: OrderContext) -> Aggregate:
    """A category's counters, plus its orders per price band and their amounts (price percentile)."""
    state = apply_order_to_entity(entity, order.order_time_ms)
    bands = [int(count) for count in state.get("price_bands") or [0] * PRICE_BANDS]
    bands[price_band(order.amount_minor)] += 1
    state["price_bands"] = bands
    state["amount_sum_minor"] = int(state.get("amount_sum_minor", 0)) + order.amount_minor
    return state


def apply_order_to_seller(entity: Aggregate | None, order: OrderContext, new_buyer: bool) -> Aggregate:
    """A seller's counters, plus its orders per UTC day for the last SELLER_DAYS_KEPT days (volume change)
    and its distinct buyers (`new_buyer`: the order's customer_seller item counted no order before it)."""
    state = apply_order_to_entity(entity, order.order_time_ms)
    state["buyers"] = int(state.get("buyers", 0)) + int(new_buyer)
    days = {int(day): int(count) for day, count in state.get("daily_orders", ())}
    day = order.order_time_ms // DAY_MS
    days[day] = days.get(day, 0) + 1
    latest = max(days)
    state["daily_orders"] = [[d, c] for d, c in sorted(days.items()) if d >= latest - SELLER_DAYS_KEPT]
    return state


def apply_order_to_group(
    group: str, entity: Aggregate | None, order: OrderContext, new_buyer: bool | None = None
) -> Aggregate:
    """An order applied to its product, seller, category or region item; a seller needs `new_buyer`
    (see apply_order_to_seller)."""
    if group == "category":
        return apply_order_to_category(entity, order)
    if group == "seller":
        if new_buyer is None:
            raise ValueError("a seller's order needs new_buyer: whether the customer bought from it before")
        return apply_order_to_seller(entity, order, new_buyer)
    return apply_order_to_entity(entity, order.order_time_ms)


def apply_return_to_entity(entity: Aggregate | None, return_time_ms: int, reason_code: str = "") -> Aggregate:
    state = new_entity() if entity is None else entity
    state["return_count"] += 1
    if any(claim in SELLER_CLAIM_TYPES for claim in claim_types(reason_code)):
        state["claim_count"] = int(state.get("claim_count", 0)) + 1
    state["last_event_ms"] = max(int(state["last_event_ms"]), return_time_ms)
    return state


def order_entity_ids(order: OrderContext | ReturnContext) -> dict[str, str]:
    """The non-customer entities an order or return touches: group -> id."""
    return {
        "product": order.product_id,
        "seller": order.seller_id,
        "category": order.category,
        "region": order.region,
    }


class AggregateStore:
    """In-memory aggregates keyed (group, id): the reference state and the unit-test fake."""

    def __init__(self) -> None:
        self.customers: dict[str, Aggregate] = {}
        self.entities: dict[tuple[str, str], Aggregate] = {}

    def entities_for(self, order: OrderContext) -> dict[str, Aggregate | None]:
        found = {group: self.entities.get((group, eid)) for group, eid in order_entity_ids(order).items()}
        for group, key in link_ids(order).items():
            found[group] = self.entities.get((LINK_ITEMS[group], key))
        for group, key in pair_ids(order).items():
            found[group] = self.entities.get((group, key))
        return found

    def apply_profile(self, customer_id: str, registered_at_ms: int) -> None:
        self.customers[customer_id] = apply_customer_profile(
            self.customers.get(customer_id), registered_at_ms
        )

    def apply_order(self, order: OrderContext) -> None:
        self.customers[order.customer_id] = apply_order_to_customer(
            self.customers.get(order.customer_id), order
        )
        pairs = pair_ids(order)
        with_seller = self.entities.get(("customer_seller", pairs.get("customer_seller", ""))) or {}
        new_buyer = int(with_seller.get("order_count", 0)) == 0
        for group, eid in order_entity_ids(order).items():
            self.entities[(group, eid)] = apply_order_to_group(
                group, self.entities.get((group, eid)), order, new_buyer=new_buyer
            )
        for item in pairs.items():
            self.entities[item] = apply_order_to_pair(self.entities.get(item), order.order_time_ms)
        for group, key in link_ids(order).items():
            item = (LINK_ITEMS[group], key)
            self.entities[item] = apply_order_to_link(self.entities.get(item), order)

    def apply_return(self, ret: ReturnContext) -> None:
        self.customers[ret.customer_id] = apply_return_to_customer(self.customers.get(ret.customer_id), ret)
        for group, eid in order_entity_ids(ret).items():
            self.entities[(group, eid)] = apply_return_to_entity(
                self.entities.get((group, eid)), ret.return_time_ms, ret.reason_code
            )
        for group, key in ret.link_ids().items():
            item = (LINK_ITEMS[group], key)
            self.entities[item] = apply_return_to_link(self.entities.get(item), ret)
        for item in ret.pair_ids().items():
            self.entities[item] = apply_return_to_pair(self.entities.get(item), ret)
        if ret.reason_text_key is not None:
            text = ("text", ret.reason_text_key)
            self.entities[text] = apply_return_to_text(self.entities.get(text), ret)

    def features(self, order: OrderContext) -> dict[str, float]:
        return compute_features(order, self.customers.get(order.customer_id), self.entities_for(order))

    def snapshot(self) -> dict[str, Any]:
        return {"customers": copy.deepcopy(self.customers), "entities": copy.deepcopy(self.entities)}


def replay(
    profiles: Mapping[str, int],
    orders: Iterable[OrderContext],
    returns: Iterable[ReturnContext],
) -> tuple[AggregateStore, Iterator[tuple[OrderContext, dict[str, float]]]]:
    """Walk a history in event-time order; yields each order with its point-in-time features.

    Events sharing a millisecond are applied only after every order at that millisecond has been
    featurised, so "strictly before" holds for ties as well. Consume the iterator fully before
    reading the store: it is the state after the whole history.
    """
    store = AggregateStore()
    for customer_id, registered in profiles.items():
        store.apply_profile(customer_id, registered)

    def walk() -> Iterator[tuple[OrderContext, dict[str, float]]]:
        timeline: list[tuple[int, int, str, OrderContext | ReturnContext]] = [
            (o.order_time_ms, 0, o.order_id, o) for o in orders
        ] + [(r.return_time_ms, 1, r.return_id, r) for r in returns]
        timeline.sort(key=lambda e: (e[0], e[1], e[2]))
        i = 0
        while i < len(timeline):
            j = i
            while j < len(timeline) and timeline[j][0] == timeline[i][0]:
                j += 1
            batch = [e[3] for e in timeline[i:j]]
            for event in batch:
                if isinstance(event, OrderContext):
                    yield event, store.features(event)
            for event in batch:
                if isinstance(event, OrderContext):
                    store.apply_order(event)
                else:
                    store.apply_return(event)
            i = j

    return store, walk()


__all__ = [
    "ENTITY_GROUPS",
    "AggregateStore",
    "ReturnContext",
    "apply_customer_profile",
    "apply_order_to_link",
    "apply_order_to_pair",
    "apply_order_to_customer",
    "apply_order_to_entity",
    "apply_order_to_group",
    "apply_return_to_customer",
    "apply_return_to_entity",
    "apply_return_to_link",
    "apply_return_to_pair",
    "apply_return_to_text",
    "new_link",
    "new_pair",
    "new_customer",
    "new_entity",
    "replay",
]
