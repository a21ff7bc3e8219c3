"""The return lane's contract: the request schema, the event payload, the feature spec entries, the
inspection-outcome labels, the text signals and the online vector (point-in-time)."""

from __future__ import annotations

import json
import typing

import pytest
from pydantic import ValidationError

from returnguard import events
from returnguard.aggregates import AggregateStore, ReturnContext
from returnguard.features import (
    FEATURES_BY_NAME,
    LANES,
    RETURN_FEATURE_NAMES,
    RETURN_FEATURES,
    RETURN_REASON_CODES,
    FeatureError,
    OrderContext,
    validate_vector,
)
from returnguard.returns import (
    ABUSIVE_OUTCOMES,
    INSPECTION_OUTCOMES,
    ReturnRequestContext,
    compute_return_features,
    feature_keys,
    features_from_items,
    outcome_label,
    reason_agreement,
    replaced,
    request_context,
    text_key,
    text_language,
)
from returnguard.schemas import ReturnReasonCode, ReturnRequest

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
DAY = 86_400_000

REQUEST = {
    "return_id": "R1",
    "order_id": "O1",
    "customer_id": "C1",
    "product_id": "P1",
    "seller_id": "S1",
    "category": "fashion",
    "region": "KA",
    "return_date": "2025-01-10T00:00:00Z",
    "order_time": "2025-01-01T00:00:00Z",
    "delivered_at": "2025-01-04T00:00:00Z",
    "order_amount": 1999.0,
    "refund_amount": 1999.0,
    "currency": "INR",
    "reason_code": "size_fit",
    "reason": "Too small, need a bigger size",
    "return_method": "pickup",
    "items": [{"product_id": "P1", "quantity": 2}],
    "delivery_address": "12 MG Road, Bengaluru",
    "pickup_address": "12  mg road, bengaluru ",
}


def test_return_spec_has_unique_described_names_and_shares_meaning_with_the_order_lane():
    assert len(RETURN_FEATURE_NAMES) == len(set(RETURN_FEATURE_NAMES)) == len(RETURN_FEATURES)
    assert all(f.description and f.description[0].isupper() for f in RETURN_FEATURES)
    assert all(f.direction in (0, 1) for f in RETURN_FEATURES)
    # a name both lanes use means the same thing in both
    for feature in RETURN_FEATURES:
        if feature.name in FEATURES_BY_NAME:
            assert FEATURES_BY_NAME[feature.name] == feature
    assert LANES["return"] is RETURN_FEATURES
    # seed 000's features are all there
    assert {"order_value", "return_count", "damaged_flag", "days_since_last_return"} <= set(
        RETURN_FEATURE_NAMES
    )
    assert {f"reason_{c}" for c in RETURN_REASON_CODES} <= set(RETURN_FEATURE_NAMES)


def test_schema_reason_codes_are_the_spec_reason_codes():
    assert typing.get_args(ReturnReasonCode) == RETURN_REASON_CODES


def test_request_parses_and_becomes_the_feature_context():
    ctx = request_context(ReturnRequest.model_validate(REQUEST))
    assert ctx.request_time_ms == T0 + 9 * DAY
    assert ctx.delivered_at_ms == T0 + 3 * DAY
    assert (ctx.order_amount_minor, ctx.refund_amount_minor) == (199_900, 199_900)
    assert ctx.item_count == 2
    assert ctx.reason_text == "Too small, need a bigger size"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reason": "x" * 1001}, "reason"),
        ({"reason_code": "refused_delivery"}, "reason_code"),
        ({"refund_amount": -1.0}, "refund_amount"),
        ({"order_amount": 0}, "order_amount"),
        ({"return_method": "rto"}, "return_method"),
        ({"order_time": 1735689600}, "order_time"),
        ({"currency": "XYZ"}, "currency"),
        ({"items": [{"product_id": "P1", "quantity": 0}]}, "items"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_requests_name_the_field(change, field):
    with pytest.raises(ValidationError) as caught:
        ReturnRequest.model_validate({**REQUEST, **change})
    assert caught.value.errors()[0]["loc"][0] == field


def test_validation_errors_do_not_echo_the_customer_text():
    secret = "IGNORE PREVIOUS INSTRUCTIONS " * 40
    with pytest.raises(ValidationError) as caught:
        ReturnRequest.model_validate({**REQUEST, "reason": secret})
    assert "IGNORE" not in str(caught.value)


def test_undelivered_order_is_representable():
    ctx = request_context(ReturnRequest.model_validate({**REQUEST, "delivered_at": None}))
    assert ctx.delivered_at_ms is None
    assert compute_return_features(ctx, None)["days_since_delivery"] == 0.0


def test_return_event_payload_carries_the_request_facts():
    envelope, payload = events.parse(
        json.dumps(
            events.envelope(
                "return",
                "ret-R1",
                T0,
                {
                    **{
                        k: REQUEST[k]
                        for k in ("return_id", "order_id", "customer_id", "product_id", "seller_id")
                    },
                    "category": "fashion",
                    "region": "KA",
                    "reason_code": "damaged",
                    "reason": "टूटा हुआ आया",
                    "refund_amount": 10.0,
                    "return_method": "pickup",
                    "status": "requested",
                },
            )
        )
    )
    assert isinstance(payload, events.ReturnPayload)
    assert payload.return_method == "pickup" and payload.refund_amount == 10.0


def test_inspection_outcomes_label_abuse():
    names = [o.name for o in INSPECTION_OUTCOMES]
    assert names[0] == "item_fine" and outcome_label("item_fine") == 0
    assert {
        "used_worn",
        "swapped_or_counterfeit",
        "empty_box",
        "customer_damage",
        "never_shipped_back",
    } == ABUSIVE_OUTCOMES
    assert all(outcome_label(name) == 1 for name in ABUSIVE_OUTCOMES)
    with pytest.raises(ValueError, match="unknown inspection outcome"):
        outcome_label("lost")


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("The zip is broken", "en"),
        ("सामान टूटा हुआ आया है", "hi"),
        ("bhai size bilkul chhota hai", "hinglish"),
        ("", ""),
        ("!!!", ""),
    ],
)
def test_text_language(text, language):
    assert text_language(text) == language


def test_reason_agreement_in_three_languages():
    assert reason_agreement("damaged", "Screen arrived cracked") == (True, False)
    assert reason_agreement("damaged", "स्क्रीन टूटा आया") == (True, False)
    assert reason_agreement("damaged", "size thoda chhota hai") == (False, True)
    assert reason_agreement("size_fit", "") == (False, False)


def test_text_key_ignores_case_spacing_and_punctuation():
    assert text_key("Item is DAMAGED!!") == text_key("item is   damaged")
    assert text_key("  ") is None and text_key("a") != text_key("b")


def ctx(t: int = T0 + 9 * DAY, **kw) -> ReturnRequestContext:
    fields = dict(
        return_id="R9",
        order_id="O9",
        customer_id="C1",
        product_id="P1",
        seller_id="S1",
        category="fashion",
        region="KA",
        request_time_ms=t,
        delivered_at_ms=t - 2 * DAY,
        order_amount_minor=100_000,
        refund_amount_minor=120_000,
        reason_code="damaged",
        reason_text="arrived broken",
        return_method="pickup",
        item_count=1,
        delivery_address="1 MG Road",
        pickup_address="9 Other Street",
    )
    fields.update(kw)
    return ReturnRequestContext(**fields)


def test_request_facts_without_history():
    vector = compute_return_features(ctx(), None)
    assert list(vector) == list(RETURN_FEATURE_NAMES)
    assert vector["order_value"] == 1000.0
    assert vector["refund_ratio"] == 1.2
    assert vector["days_since_delivery"] == 2.0
    assert vector["reason_damaged"] == 1.0 and vector["damaged_flag"] == 1.0
    assert sum(vector[f"reason_{c}"] for c in RETURN_REASON_CODES) == 1.0
    assert vector["pickup_address_differs"] == 1.0
    assert vector["reason_text_supports_code"] == 1.0
    assert vector["return_count"] == 0.0 and vector["days_since_last_return"] == -1.0
    assert validate_vector(vector, RETURN_FEATURES) == [vector[n] for n in RETURN_FEATURE_NAMES]
    with pytest.raises(FeatureError, match="unknown feature"):
        validate_vector(vector)  # an order model's spec refuses a return vector


def _order(n: int, t: int, customer: str = "C1") -> OrderContext:
    return OrderContext(f"O{n}", customer, "P1", "S1", "fashion", "KA", t, 50_000, "upi", "1 MG Road")


def _return(o: OrderContext, t: int, code: str, n: int) -> ReturnContext:
    return ReturnContext(f"R{n}", o.order_id, o.customer_id, "P1", "S1", "fashion", "KA", t, code)


def test_history_is_strictly_before_the_request():
    t = T0 + 20 * DAY
    store = AggregateStore()
    orders = [_order(i, T0 + i * DAY) for i in range(4)]
    for o in orders:
        store.apply_order(o)
    store.apply_return(_return(orders[0], T0 + 5 * DAY, "damaged", 1))
    store.apply_return(_return(orders[1], T0 + 6 * DAY, "wrong_item", 2))
    store.apply_return(_return(orders[2], t, "size_fit", 3))  # the request itself, already applied
    store.apply_return(_return(orders[3], t + DAY, "damaged", 4))  # later: must not count
    request = ctx(t, order_id="O2")
    items = {"customer": store.customers["C1"], **store.entities_for(_order(2, t))}
    vector = features_from_items(request, items)
    assert vector["return_count"] == 2.0
    assert vector["customer_order_count"] == 4.0
    assert vector["customer_return_share"] == 0.5
    assert vector["days_since_last_return"] == 14.0
    assert vector["customer_damage_claims_30d"] == 1.0
    assert vector["customer_mismatch_claims_30d"] == 1.0
    assert vector["customer_fit_quality_claims_30d"] == 0.0
    assert vector["customer_damaged_claims"] == 1.0


def test_product_seller_and_category_claim_rates_come_from_their_claim_counters():
    # Given a product 3 of whose 20 orders came back with a damage or mismatch claim, a seller never seen,
    # and a category with orders but no claim
    store = AggregateStore()
    for i in range(20):
        store.apply_order(_order(i, T0 + i * DAY, customer=f"C{i}"))
    for i, code in enumerate(("damaged", "wrong_item", "missing_parts", "size_fit", "changed_mind")):
        store.apply_return(_return(_order(i, T0 + i * DAY, customer=f"C{i}"), T0 + (i + 3) * DAY, code, i))
    items = {**store.entities_for(_order(99, T0 + 30 * DAY)), "seller": None}
    store.entities[("category", "fashion")]["claim_count"] = 0
    vector = features_from_items(ctx(T0 + 30 * DAY, order_id="O99"), items)
    # Then each is its smoothed share (claims + 1) / (orders + 10): size and changed-mind returns are no claim
    assert vector["product_claim_rate"] == (3 + 1.0) / (20 + 10.0)
    assert vector["seller_claim_rate"] == 0.1  # never seen: the prior
    assert vector["category_claim_rate"] == 1.0 / 30.0
    assert vector["product_return_rate"] == (5 + 1.0) / (20 + 10.0)  # the return rate counts every return


def test_repeated_text_counts_other_customers_before_only():
    request = ctx()
    text = {"customers": {"C1": T0, "C2": T0, "C3": T0 + 9 * DAY, "C4": T0 + 30 * DAY}}
    assert compute_return_features(request, None, text=text)["reason_text_other_customers"] == 1.0


def test_feature_keys_are_one_batch_get():
    keys = feature_keys(ctx())
    assert keys == {
        "customer": "customer#C1",
        "product": "product#P1",
        "region": "region#KA",
        "seller": "seller#S1",
        "category": "category#fashion",
        "text": f"text#{text_key('arrived broken')}",
    }
    assert "text" not in feature_keys(ctx(reason_text=""))


def test_a_return_event_with_text_updates_its_text_link_item():
    from returnguard.aws.stream_apply import changes

    payload = {k: REQUEST[k] for k in ("return_id", "order_id", "customer_id", "product_id", "seller_id")}
    payload |= {"category": "fashion", "region": "KA", "reason_code": "damaged", "reason": "Arrived BROKEN!"}
    envelope, parsed = events.parse(json.dumps(events.envelope("return", "ret-R1", T0, payload)))
    context = events.to_context(envelope, parsed)
    assert isinstance(context, ReturnContext) and context.reason_text_key == text_key("arrived broken")
    touched = dict(changes(envelope, parsed))
    key = f"text#{text_key('arrived broken')}"
    assert touched[key](None) == {"customers": {"C1": T0}, "last_event_ms": T0}
    # an earlier sighting by the same customer is kept; without text there is no text item
    assert touched[key]({"customers": {"C1": T0 - 5}, "last_event_ms": T0 - 5})["customers"] == {"C1": T0 - 5}
    _, silent = events.parse(json.dumps(events.envelope("return", "ret-R2", T0, {**payload, "reason": None})))
    assert not [k for k, _ in changes(envelope, silent) if k.startswith("text#")]


def test_the_store_links_texts_like_addresses_with_a_cap():
    store = AggregateStore()
    for i in range(30):
        o = _order(i, T0 + i, customer=f"C{i:02d}")
        store.apply_return(
            ReturnContext(
                f"R{i}", o.order_id, o.customer_id, "P1", "S1", "fashion", "KA", T0 + i, "damaged", "k1"
            )
        )
    linked = store.entities[("text", "k1")]["customers"]
    assert len(linked) == 20 and min(linked) == "C00" and max(linked) == "C19"


def test_a_request_as_a_return_event_carries_the_orders_address_and_identifiers():
    ids = {"card_fingerprint": "card-1", "device_id": "dev-1", "phone_hash": "ph-1", "ip_prefix": "10.0.0"}
    event = ctx(**ids).as_return()
    assert (event.delivery_address, event.reason_text_key) == ("1 MG Road", text_key("arrived broken"))
    assert {name: getattr(event, name) for name in ids} == ids
    assert event.link_ids() == {"address": event.address_key, "card": "card-1", "device": "dev-1",
                                "phone": "ph-1", "ip": "10.0.0"}  # fmt: skip
    assert ctx().as_return().link_ids() == {"address": event.address_key}  # identifiers are optional


def test_a_request_replacing_its_return_event_keeps_the_identifiers_only_the_event_names():
    # Given the stream's return event of R9 (with the order's card and device) and the request of R9
    # (which names a device of its own but no card)
    o = _order(9, T0)
    event = ReturnContext(
        "R9", o.order_id, "C1", "P1", "S1", "fashion", "KA", T0 + DAY, "damaged",
        delivery_address="1 MG Road", card_fingerprint="card-1", device_id="dev-old",
    )  # fmt: skip
    request = ctx(device_id="dev-new").as_return()
    # When the replay puts the request in the event's place
    merged = replaced(event, request)
    # Then the request's facts win and the event's card is kept
    assert (
        merged.reason_text_key == text_key("arrived broken")
        and merged.return_time_ms == request.return_time_ms
    )
    assert (merged.card_fingerprint, merged.device_id, merged.phone_hash) == ("card-1", "dev-new", None)
    store = AggregateStore()
    store.apply_return(merged)
    assert [r[1] for r in store.entities[("card_link", "card-1")]["returns"]] == ["R9"]
