"""The feature spec and its online computation: point-in-time, defaults, and the bounded aggregates."""

from __future__ import annotations

import math
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from returnguard import calendar
from returnguard.aggregates import AggregateStore, ReturnContext, replay
from returnguard.features import (
    CLAIM_TYPES,
    COD_REFUSAL_REASON_CODE,
    DAMAGE_REASON_CODES,
    FEATURE_NAMES,
    FEATURES,
    LINK_CAP,
    LINK_IDENTIFIERS,
    FeatureError,
    OrderContext,
    address_key,
    amount_to_minor,
    compute_features,
    price_band,
    smoothed_rate,
    validate_vector,
    vector_as_list,
)

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z, outside any sale window
DAY = 86_400_000
REASONS = ["damaged", "defective", "empty_box", "size_fit", "changed_mind", "refused_delivery", "wrong_item",
           "not_as_described", "missing_parts", "quality"]  # fmt: skip


def order(n: int, t: int, customer: str = "C1", amount_minor: int = 100_000, **kw) -> OrderContext:
    fields = dict(
        order_id=f"O{n:06d}",
        customer_id=customer,
        product_id="P1",
        seller_id="S1",
        category="fashion",
        region="MH",
        order_time_ms=t,
        amount_minor=amount_minor,
        payment_method="upi",
        delivery_address="1 MG Road, Pune",
    )
    fields.update(kw)
    return OrderContext(**fields)


def returned(o: OrderContext, t: int, reason: str = "size_fit", n: int = 0) -> ReturnContext:
    return ReturnContext(
        return_id=f"R{n or int(o.order_id[1:]):06d}",
        order_id=o.order_id,
        customer_id=o.customer_id,
        product_id=o.product_id,
        seller_id=o.seller_id,
        category=o.category,
        region=o.region,
        return_time_ms=t,
        reason_code=reason,
        delivery_address=o.delivery_address,
        **{name: getattr(o, name) for name in LINK_IDENTIFIERS.values()},
    )


def test_spec_is_one_ordered_list_with_unique_names_and_descriptions():
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == len(FEATURES)
    assert all(f.description and f.description[0].isupper() for f in FEATURES)
    assert all(f.kind in {"float", "int", "bool"} for f in FEATURES)


def test_a_return_feature_named_like_an_order_feature_is_the_order_specs_own():
    # One definition per name: the return spec reuses the order spec's Feature, never a copy of it
    from returnguard.features import FEATURES_BY_NAME, RETURN_FEATURES

    shared = [f for f in RETURN_FEATURES if f.name in FEATURES_BY_NAME]
    assert {f.name for f in shared} >= {"seller_claim_rate", "seller_return_rate", "customer_order_count"}
    assert all(f is FEATURES_BY_NAME[f.name] for f in shared)


def test_new_customer_gets_defaults_and_order_facts_only():
    vector = compute_features(order(1, T0, amount_minor=129_999, payment_method="cod"), None)
    assert list(vector) == list(FEATURE_NAMES)
    assert vector["order_amount"] == 1299.99
    assert vector["payment_is_cod"] == 1.0
    assert vector["customer_order_count"] == 0.0
    assert vector["customer_days_since_last_return"] == -1.0
    assert vector["delivery_address_is_new"] == 1.0
    assert vector["product_return_rate"] == smoothed_rate(0, 0) == 0.1


def test_return_known_only_after_it_happens():
    # Given an order returned on day 5, when a second order is placed on day 3 and another on day 6
    store = AggregateStore()
    first = order(1, T0)
    store.apply_order(first)
    store.apply_return(returned(first, T0 + 5 * DAY, "damaged"))
    before = store.features(order(2, T0 + 3 * DAY))
    after = store.features(order(3, T0 + 6 * DAY))
    # Then the day-3 order can't see the return; the day-6 one can
    assert before["customer_return_count"] == 0.0
    assert before["customer_returns_last_6_orders"] == 0.0
    assert before["customer_damaged_claims"] == 0.0
    assert after["customer_return_count"] == 1.0
    assert after["customer_returns_last_6_orders"] == 1.0
    assert after["customer_damaged_claims"] == 1.0
    assert after["customer_days_since_last_return"] == 1.0


def test_events_at_the_same_millisecond_are_not_before():
    profiles = {"C1": T0 - DAY}
    orders = [order(1, T0), order(2, T0), order(3, T0 + 1)]
    _, walk = replay(profiles, orders, [])
    vectors = {o.order_id: v for o, v in walk}
    assert vectors["O000001"]["customer_order_count"] == 0.0
    assert vectors["O000002"]["customer_order_count"] == 0.0
    assert vectors["O000003"]["customer_order_count"] == 2.0
    assert vectors["O000003"]["customer_orders_last_60s"] == 2.0


def test_velocity_windows_include_their_start_and_exclude_the_order_itself():
    # [t - 60 s, t): the same bounds as Spark's rangeBetween(-60000, -1) on epoch milliseconds.
    store = AggregateStore()
    store.apply_order(order(1, T0))
    assert store.features(order(2, T0 + 60_000))["customer_orders_last_60s"] == 1.0
    assert store.features(order(2, T0 + 60_001))["customer_orders_last_60s"] == 0.0
    assert store.features(order(2, T0 + 3_600_000))["customer_orders_last_1h"] == 1.0
    assert store.features(order(2, T0 + 3_600_001))["customer_orders_last_1h"] == 0.0


def test_amount_relative_to_history_uses_exact_integer_sums():
    store = AggregateStore()
    store.apply_order(order(1, T0, amount_minor=10_001))
    store.apply_order(order(2, T0 + DAY, amount_minor=20_002))
    vector = store.features(order(3, T0 + 2 * DAY, amount_minor=45_003))
    assert vector["customer_avg_order_amount"] == 30_003 / 200
    assert vector["amount_vs_customer_avg"] == (45_003 * 2) / 30_003


def test_address_key_ignores_case_and_spacing():
    assert address_key("  12 MG Road,\tPune ") == address_key("12 mg road, pune")
    assert address_key("12 MG Road, Pune") != address_key("13 MG Road, Pune")
    assert len(address_key("x")) == 16


def test_amount_to_minor_rounds_binary_noise():
    assert amount_to_minor(1299.99) == 129_999
    assert amount_to_minor(0.07) == 7


def test_festival_flag_follows_calendar_in_india_time():
    diwali = next(w for w in calendar.WINDOWS if w.name == "Diwali" and w.first_day.year == 2025)
    assert calendar.window_at(diwali.start_ms) == "Diwali"
    assert calendar.window_at(diwali.start_ms - 1) is None
    assert calendar.window_at(diwali.end_ms) is None
    assert diwali.first_day == date(2025, 10, 16)
    # 18:30 UTC the evening before is already midnight in India.
    assert compute_features(order(1, diwali.start_ms), None)["is_festival_sale"] == 1.0

    # Days to the next festival: a day and a half before Diwali, 0 during it; a sale is not a festival,
    # and past the calendar's last festival it reads the cap.
    def days(t: int) -> float:
        return compute_features(order(1, t), None)["days_to_festival"]

    assert days(diwali.start_ms - 36 * 3_600_000) == 1.5 and days(diwali.end_ms - 1) == 0.0
    sale = next(w for w in calendar.WINDOWS if w.name == "Big festive sale" and w.first_day.year == 2025)
    assert days(sale.start_ms) == 9.0  # the festive sale starts 9 days before Dussehra
    assert days(calendar.WINDOWS[-1].end_ms) == 30.0


def test_validate_vector_names_the_bad_feature():
    good = {name: 0.0 for name in FEATURE_NAMES}
    assert validate_vector(good) == vector_as_list(good)
    with pytest.raises(FeatureError) as missing:
        validate_vector({k: v for k, v in good.items() if k != "order_amount"})
    assert missing.value.field == "order_amount"
    with pytest.raises(FeatureError) as unknown:
        validate_vector({**good, "shoe_size": 9})
    assert unknown.value.field == "shoe_size"
    with pytest.raises(FeatureError) as typed:
        validate_vector({**good, "payment_is_cod": "yes"})
    assert typed.value.field == "payment_is_cod"
    with pytest.raises(FeatureError):
        validate_vector({**good, "order_amount": math.nan})
    with pytest.raises(FeatureError):
        validate_vector({**good, "payment_is_cod": True})


# --- the bounded aggregates against a from-scratch computation of every definition ---------------


def naive_features(
    o: OrderContext, registered: int, orders: list[OrderContext], returns: list[ReturnContext]
):
    """Each feature straight from its definition over the full history (slow, obviously right)."""
    t = o.order_time_ms
    mine = sorted(
        (p for p in orders if p.customer_id == o.customer_id and p.order_time_ms < t),
        key=lambda p: (p.order_time_ms, p.order_id),
    )
    my_returns = [r for r in returns if r.customer_id == o.customer_id and r.return_time_ms < t]
    returned_at = {}
    for r in returns:
        returned_at[r.order_id] = min(returned_at.get(r.order_id, r.return_time_ms), r.return_time_ms)
    n, k = len(mine), len(my_returns)
    last6 = mine[-6:]
    r6 = sum(1 for p in last6 if returned_at.get(p.order_id, t) < t)
    total = sum(p.amount_minor for p in mine)
    addresses = {p.address_key for p in mine}

    def claims(codes: frozenset[str]) -> float:
        return float(sum(1 for r in my_returns if r.reason_code in codes))

    def last_hour(attr: str) -> float:
        return float(
            sum(1 for p in mine if getattr(p, attr) == getattr(o, attr) and p.order_time_ms >= t - 3_600_000)
        )

    seller_orders = [p.order_time_ms for p in orders if p.seller_id == o.seller_id and p.order_time_ms < t]
    seller_claims = sum(
        1
        for r in returns
        if r.seller_id == o.seller_id
        and r.return_time_ms < t
        and r.reason_code in CLAIM_TYPES["damage"] | CLAIM_TYPES["mismatch"]
    )

    by_id = {p.order_id: p for p in orders}
    claim_codes = CLAIM_TYPES["damage"] | CLAIM_TYPES["mismatch"]

    def linked(key: str) -> dict[str, float]:
        """<group>_linked_returns / _claims: returns of orders sharing o's address / identifier, of the
        earliest LINK_CAP such returns (what the item keeps), by other customers before t."""
        group = (
            "address" if key == "address_key" else next(g for g, n in LINK_IDENTIFIERS.items() if n == key)
        )
        value = getattr(o, key)
        kept = sorted(
            (r for r in returns if value and getattr(by_id[r.order_id], key) == value),
            key=lambda r: (r.return_time_ms, r.return_id),
        )[:LINK_CAP]
        mine = [r for r in kept if r.customer_id != o.customer_id and r.return_time_ms < t]
        return {
            f"{group}_linked_returns": float(len(mine)),
            f"{group}_linked_claims": float(sum(1 for r in mine if r.reason_code in claim_codes)),
        }

    in_category = [p for p in orders if p.category == o.category and p.order_time_ms < t]
    band = price_band(o.amount_minor)
    below = sum(1 for p in in_category if price_band(p.amount_minor) < band)
    same = sum(1 for p in in_category if price_band(p.amount_minor) == band)
    category_sum = sum(p.amount_minor for p in in_category)
    today = t // DAY
    seller_days = [
        p.order_time_ms // DAY for p in orders if p.seller_id == o.seller_id and p.order_time_ms < t
    ]
    last_week = sum(1 for d in seller_days if today - 7 <= d < today)
    weeks_before = sum(1 for d in seller_days if today - 35 <= d < today - 7)

    mine_with_seller = sum(1 for p in mine if p.seller_id == o.seller_id)
    claims_on_seller = sum(
        1 for r in my_returns if r.seller_id == o.seller_id and r.reason_code in claim_codes
    )
    in_my_category = sum(1 for p in mine if p.category == o.category)
    returned_in_category = sum(1 for r in my_returns if r.category == o.category)
    seller_buyers = {p.customer_id for p in orders if p.seller_id == o.seller_id and p.order_time_ms < t}

    def rate(attr: str) -> float:
        value = getattr(o, attr)
        orders_before = sum(1 for p in orders if getattr(p, attr) == value and p.order_time_ms < t)
        returns_before = sum(1 for r in returns if getattr(r, attr) == value and r.return_time_ms < t)
        return smoothed_rate(returns_before, orders_before)

    return {
        "order_amount": o.amount_minor / 100,
        "payment_is_cod": float(o.payment_method == "cod"),
        "is_festival_sale": float(calendar.is_festival_sale(t)),
        "customer_account_age_days": (t - registered) / DAY if registered <= t else 0.0,
        "customer_order_count": float(n),
        "customer_return_count": float(k),
        "customer_return_rate": k / n if n else 0.0,
        "customer_returns_last_6_orders": float(r6),
        "customer_return_rate_last_6": r6 / len(last6) if last6 else 0.0,
        "customer_returns_last_30d": float(sum(1 for r in my_returns if r.return_time_ms >= t - 30 * DAY)),
        "customer_days_since_last_return": (t - max(r.return_time_ms for r in my_returns)) / DAY
        if my_returns
        else -1.0,
        "customer_damaged_claims": float(sum(1 for r in my_returns if r.reason_code in DAMAGE_REASON_CODES)),
        "customer_cod_refusals": float(
            sum(1 for r in my_returns if r.reason_code == COD_REFUSAL_REASON_CODE)
        ),
        "customer_avg_order_amount": total / (n * 100) if n else 0.0,
        "amount_vs_customer_avg": (o.amount_minor * n) / total if n and total else 1.0,
        "customer_distinct_addresses": float(len(addresses)),
        "delivery_address_is_new": 0.0 if o.address_key in addresses else 1.0,
        "customer_orders_last_60s": float(sum(1 for p in mine if p.order_time_ms >= t - 60_000)),
        "customer_orders_last_1h": float(sum(1 for p in mine if p.order_time_ms >= t - 3_600_000)),
        **linked("address_key"),
        **{k: v for name in LINK_IDENTIFIERS.values() for k, v in linked(name).items()},
        "customer_mismatch_claims": claims(frozenset({"wrong_item", "not_as_described", "missing_parts"})),
        "customer_fit_quality_claims": claims(frozenset({"size_fit", "quality"})),
        "customer_days_since_first_return": (t - min(r.return_time_ms for r in my_returns)) / DAY
        if my_returns
        else -1.0,
        "customer_same_product_last_1h": last_hour("product_id"),
        "customer_same_category_last_1h": last_hour("category"),
        "seller_age_days": (t - min(seller_orders)) / DAY if seller_orders else 0.0,
        "seller_claim_rate": smoothed_rate(seller_claims, len(seller_orders)),
        "category_price_percentile": (2 * below + same) / (2 * len(in_category)) if in_category else 0.5,
        # category mean / customer mean, and last week / (4-week average), each as one division
        "category_value_vs_customer_avg": float(category_sum * n) / float(len(in_category) * total)
        if in_category and n and total
        else 1.0,
        "seller_volume_change": (4 * last_week + 4) / (weeks_before + 4),
        "customer_days_since_last_order": (t - mine[-1].order_time_ms) / DAY if mine else -1.0,
        "days_to_festival": min(
            [max(w.start_ms - t, 0) / DAY for w in calendar.WINDOWS if w.kind == "festival" and w.end_ms > t]
            + [30.0]
        ),
        "customer_seller_orders": float(mine_with_seller),
        "customer_seller_claims": float(claims_on_seller),
        "seller_repeat_order_share": smoothed_rate(
            len(seller_orders) - len(seller_buyers), len(seller_orders)
        ),
        "customer_category_returns": float(returned_in_category),
        "customer_category_return_rate": returned_in_category / in_my_category if in_my_category else 0.0,
        "product_return_rate": rate("product_id"),
        "category_return_rate": rate("category"),
        "seller_return_rate": rate("seller_id"),
        "region_return_rate": rate("region"),
        "address_other_customers": float(
            len(
                {
                    p.customer_id
                    for p in orders
                    if p.address_key == o.address_key
                    and p.order_time_ms < t
                    and p.customer_id != o.customer_id
                }
            )
        ),
        **{
            f"{group}_other_customers": float(
                len(
                    {
                        p.customer_id
                        for p in orders
                        if getattr(o, name)
                        and getattr(p, name) == getattr(o, name)
                        and p.order_time_ms < t
                        and p.customer_id != o.customer_id
                    }
                )
            )
            for group, name in LINK_IDENTIFIERS.items()
        },
    }


@st.composite
def histories(draw):
    count = draw(st.integers(min_value=1, max_value=40))
    # Gaps from a second to weeks, so windows (60 s, 1 h, 30 days) and the last-6 list all get exercised.
    gaps = draw(
        st.lists(
            st.sampled_from([0, 1_000, 30_000, 59_999, 60_000, 3_599_999, 2 * DAY, 29 * DAY, 31 * DAY]),
            min_size=count,
            max_size=count,
        )
    )
    orders, returns, t = [], [], T0
    for i, gap in enumerate(gaps):
        t += gap
        o = order(
            i + 1,
            t,
            customer=draw(st.sampled_from(["C1", "C2", "C3"])),
            amount_minor=draw(st.integers(min_value=100, max_value=5_000_000)),
            product_id=draw(st.sampled_from(["P1", "P2"])),
            seller_id=draw(st.sampled_from(["S1", "S2"])),
            category=draw(st.sampled_from(["fashion", "electronics"])),
            payment_method=draw(st.sampled_from(["cod", "upi"])),
            delivery_address=draw(st.sampled_from(["1 MG Road", "2 Park St", "3 Lake Rd"])),
            card_fingerprint=draw(st.sampled_from([None, "card-a", "card-b"])),
            device_id=draw(st.sampled_from([None, "device-a", "device-b"])),
            phone_hash=draw(st.sampled_from([None, "phone-a"])),
            ip_prefix=draw(st.sampled_from([None, "net-a", "net-b"])),
        )
        orders.append(o)
        if draw(st.booleans()):
            delay = draw(st.sampled_from([1, 60_000, DAY, 3 * DAY, 20 * DAY, 40 * DAY]))
            returns.append(returned(o, t + delay, draw(st.sampled_from(REASONS)), n=i + 1))
    return orders, returns


@settings(max_examples=150, deadline=None)
@given(histories())
def test_replayed_aggregates_match_every_definition(history):
    orders, returns = history
    profiles = {"C1": T0 - 100 * DAY, "C2": T0 - DAY, "C3": T0 + 5 * DAY}
    store, walk = replay(profiles, orders, returns)
    for o, vector in walk:
        expected = naive_features(o, profiles[o.customer_id], orders, returns)
        assert vector == expected, o.order_id
    assert sum(c["order_count"] for c in store.customers.values()) == len(orders)
    assert sum(c["return_count"] for c in store.customers.values()) == len(returns)


def test_store_updated_after_the_order_still_gives_point_in_time_vector():
    # The stream may apply an order (and later events) before the API scores it again: the customer
    # features must still only reflect what happened strictly before the scored order.
    store = AggregateStore()
    first, second = order(1, T0), order(2, T0 + 10 * DAY)
    store.apply_order(first)
    store.apply_return(returned(first, T0 + 2 * DAY, "empty_box"))
    expected = store.features(second)
    store.apply_order(second)
    store.apply_return(returned(second, T0 + 10 * DAY + 5, "damaged", n=2))
    again = store.features(second)
    customer_features = [f.name for f in FEATURES if f.group in {"order", "customer"}]
    assert {k: again[k] for k in customer_features} == {k: expected[k] for k in customer_features}


def test_address_links_count_other_customers_before_the_order_up_to_the_cap():
    from returnguard.features import LINK_CAP

    # Given 25 customers who each had an order delivered to the same flat, a minute apart
    store = AggregateStore()
    flat = "Flat 2B, Sai Residency, 14 MG Road, Pune"
    history = [order(i, T0 + i * 60_000, customer=f"C{i:02d}", delivery_address=flat) for i in range(25)]
    vectors = []
    for o in history:
        vectors.append(store.features(o)["address_other_customers"])
        store.apply_order(o)
    # Then each saw the customers before it, and the count saturates at the cap
    assert vectors[:5] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert vectors[-1] == LINK_CAP
    state = store.entities[("address", history[0].address_key)]
    assert len(state["customers"]) == LINK_CAP and "C00" in state["customers"]
    # The same address written differently is the same link; a returning customer is not "other"
    again = order(
        99, T0 + DAY, customer="C00", delivery_address="  flat 2b,  SAI residency, 14 mg road, pune "
    )
    assert store.features(again)["address_other_customers"] == LINK_CAP - 1
    # and a store that already holds later customers still gives the point-in-time count
    assert store.features(history[3])["address_other_customers"] == 3.0


def test_link_items_never_share_a_table_key_prefix_with_another_aggregate():
    # The features table holds every lane's aggregates as entity#id: a card's link item must not be
    # the payments lane's card aggregate (another layout, written by another consumer).
    from returnguard import payments
    from returnguard.features import ENTITY_GROUPS, LINK_GROUPS, LINK_ITEMS

    others = {"customer", "text", *ENTITY_GROUPS, *payments.ENTITIES}
    assert set(LINK_ITEMS) == set(LINK_GROUPS)
    assert LINK_ITEMS["address"] == "address"  # deployed tables already hold address# items
    assert not (set(LINK_ITEMS.values()) - {"address"}) & others
    assert len(set(LINK_ITEMS.values())) == len(LINK_ITEMS)
