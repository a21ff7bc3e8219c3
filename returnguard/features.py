"""THE feature spec: names, order, types, defaults, business descriptions, and the online computation.

Everything that builds a feature vector reads this module: the Glue (Spark) job that builds the
training table, the SageMaker inference code that checks its input, and the scoring Lambda that
computes one vector from stored aggregates. A feature of an order uses only events strictly before
the order's time (point-in-time), so what the model learns from is what serving can know.

Pure Python on purpose: no numpy or pandas on the scoring path.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from returnguard.calendar import DAY_MS, days_to_festival, is_festival_sale

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
RETURN_WINDOW_MS = 30 * DAY_MS
VELOCITY_SHORT_MS = MINUTE_MS  # seed 002: several orders within 60 seconds
VELOCITY_LONG_MS = HOUR_MS
RECENT_ORDERS = 6  # "returned 4 of the last 6 orders"
# A link item (a delivery address, a card, a device, a phone, an IP prefix) remembers its earliest
# customers only (a depot, a hostel, a corporate card or a carrier's NAT would grow without end): link
# counts saturate here, identically in Spark, the replay and the stream.
LINK_CAP = 20
# Beta prior for entity return rates: an unseen product starts at 10% and needs orders to move.
RATE_PRIOR_RETURNS = 1.0
RATE_PRIOR_ORDERS = 10.0

DAMAGE_REASON_CODES = frozenset({"damaged", "defective", "empty_box"})
SELLER_CLAIM_TYPES = ("damage", "mismatch")  # claims that blame the parcel or the listing: seller_claim_rate
COD_REFUSAL_REASON_CODE = "refused_delivery"
NEVER = -1.0  # days since last return when there was none
# A category's price percentile reads its orders' counts per price band (10 bands a decade, from
# 10^2.1 to 10^8 minor units; below and above fall in the end bands): an exact integer histogram, the
# same in Spark, the replay and the stream, at a resolution of about 26% of a price.
PRICE_BAND_BOUNDS_MINOR: tuple[int, ...] = tuple(round(10 ** (2 + i / 10)) for i in range(1, 61))
PRICE_BANDS = len(PRICE_BAND_BOUNDS_MINOR) + 1
# A seller's volume change: orders in the 7 UTC days before the order's day against its weekly
# average over the 28 days before those. The seller item keeps its daily counts that long.
SELLER_RECENT_DAYS = 7
SELLER_BASELINE_DAYS = 28
SELLER_DAYS_KEPT = SELLER_RECENT_DAYS + SELLER_BASELINE_DAYS
FESTIVAL_LOOKAHEAD_DAYS = 30.0  # days_to_festival: further than this reads as this
# Items of a customer with one seller / one category (issue 14: shill buyers, a customer's own returns in
# the category): their orders, returns and claims, keyed by `pair_key` (the group is the item's entity).
PAIR_GROUPS: dict[str, str] = {"customer_seller": "seller_id", "customer_category": "category"}

Kind = Literal["float", "int", "bool"]
Group = Literal[
    "order",
    "customer",
    "product",
    "seller",
    "category",
    "region",
    "address",
    "return",
    "text",
    "payment",
    "card",
    "terminal",
    "merchant",
    "device",
    "phone",
    "ip",
    "customer_seller",
    "customer_category",
]


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind
    default: float
    group: Group
    description: str  # business language, used by explanations and docs
    # +1: the business knows more of this never makes an order safer (a risk signal); the model is
    # trained monotone in it and explanations cite it only when it is above its default. 0: no rule.
    direction: int = 0


# The identifiers whose link items remember returns like the address item (its two features are above).
_LINKED_OUTCOMES: dict[Group, str] = {
    "card": "paid with this card",
    "device": "placed from this device",
    "phone": "placed with this phone number",
    "ip": "placed from this network (IP prefix)",
}

FEATURES: tuple[Feature, ...] = (
    Feature("order_amount", "float", 0.0, "order", "Order amount"),
    Feature("payment_is_cod", "bool", 0.0, "order", "Cash on delivery payment"),
    Feature("is_festival_sale", "bool", 0.0, "order", "Placed during a festival or sale period"),
    Feature("customer_account_age_days", "float", 0.0, "customer", "Age of the customer's account in days"),
    Feature("customer_order_count", "int", 0.0, "customer", "Orders the customer placed before"),
    Feature(
        "customer_return_count", "int", 0.0, "customer", "Orders the customer returned before", direction=1
    ),
    Feature(
        "customer_return_rate",
        "float",
        0.0,
        "customer",
        "Share of the customer's past orders returned",
        direction=1,
    ),
    Feature(
        "customer_returns_last_6_orders",
        "int",
        0.0,
        "customer",
        "Returns among the customer's last 6 orders",
        direction=1,
    ),
    Feature(
        "customer_return_rate_last_6",
        "float",
        0.0,
        "customer",
        "Return rate over the customer's last 6 orders",
        direction=1,
    ),
    Feature(
        "customer_returns_last_30d",
        "int",
        0.0,
        "customer",
        "Returns by the customer in the last 30 days",
        direction=1,
    ),
    Feature(
        "customer_days_since_last_return", "float", NEVER, "customer", "Days since the customer's last return"
    ),
    Feature(
        "customer_damaged_claims",
        "int",
        0.0,
        "customer",
        "Returns the customer claimed as damaged or empty",
        direction=1,
    ),
    Feature(
        "customer_cod_refusals",
        "int",
        0.0,
        "customer",
        "Cash-on-delivery orders the customer refused",
        direction=1,
    ),
    Feature("customer_avg_order_amount", "float", 0.0, "customer", "Customer's average order amount"),
    Feature(
        "amount_vs_customer_avg", "float", 1.0, "customer", "Order amount relative to the customer's average"
    ),
    Feature(
        "customer_distinct_addresses", "int", 0.0, "customer", "Distinct delivery addresses the customer used"
    ),
    Feature(
        "delivery_address_is_new", "bool", 1.0, "customer", "Delivery address not used by the customer before"
    ),
    Feature(
        "customer_orders_last_60s", "int", 0.0, "customer", "Orders by the customer in the previous minute"
    ),
    Feature("customer_orders_last_1h", "int", 0.0, "customer", "Orders by the customer in the previous hour"),
    Feature("product_return_rate", "float", 0.1, "product", "Return rate of this product"),
    Feature("category_return_rate", "float", 0.1, "category", "Return rate of this product category"),
    Feature("seller_return_rate", "float", 0.1, "seller", "Return rate of this seller's orders"),
    Feature("region_return_rate", "float", 0.1, "region", "Return rate in the delivery region"),
    Feature(
        "address_other_customers",
        "int",
        0.0,
        "address",
        "Other customers who had orders delivered to this address before",
    ),
    Feature("card_other_customers", "int", 0.0, "card", "Other customers who paid with this card before"),
    Feature(
        "device_other_customers", "int", 0.0, "device", "Other customers who ordered from this device before"
    ),
    Feature(
        "phone_other_customers", "int", 0.0, "phone", "Other customers who gave this phone number before"
    ),
    Feature(
        "address_linked_returns",
        "int",
        0.0,
        "address",
        "Returns by other customers of orders delivered to this address before",
        direction=1,
    ),
    Feature(
        "address_linked_claims",
        "int",
        0.0,
        "address",
        "Damage or mismatch claims by other customers on orders delivered to this address before",
        direction=1,
    ),
    Feature(
        "customer_mismatch_claims",
        "int",
        0.0,
        "customer",
        "Returns the customer claimed as the wrong item, not as described or missing parts",
        direction=1,
    ),
    Feature(
        "customer_fit_quality_claims",
        "int",
        0.0,
        "customer",
        "Returns the customer made for size, fit or quality",
    ),
    Feature(
        "customer_days_since_first_return",
        "float",
        NEVER,
        "customer",
        "Days since the customer's first return",
    ),
    Feature(
        "customer_same_product_last_1h",
        "int",
        0.0,
        "customer",
        "Orders of this same product by the customer in the previous hour (several sizes or variants)",
    ),
    Feature(
        "customer_same_category_last_1h",
        "int",
        0.0,
        "customer",
        "Orders in this category by the customer in the previous hour (bought together)",
    ),
    Feature("seller_age_days", "float", 0.0, "seller", "Days since the seller's first order"),
    Feature(
        "seller_claim_rate",
        "float",
        0.1,
        "seller",
        "Share of the seller's orders returned with a damage or mismatch claim",
    ),
    Feature(
        "ip_other_customers",
        "int",
        0.0,
        "ip",
        "Other customers who ordered from this network (IP prefix) before",
    ),
    # Linked accounts' outcomes (issue 14): what the other customers who shared the order's card,
    # device, phone or network returned and claimed on orders with it, as the address item's above.
    *(
        feature
        for group, with_it in _LINKED_OUTCOMES.items()
        for feature in (
            Feature(
                f"{group}_linked_returns",
                "int",
                0.0,
                group,
                f"Returns by other customers of orders {with_it} before",
                direction=1,
            ),
            Feature(
                f"{group}_linked_claims",
                "int",
                0.0,
                group,
                f"Damage or mismatch claims by other customers on orders {with_it} before",
                direction=1,
            ),
        )
    ),
    Feature(
        "category_price_percentile",
        "float",
        0.5,
        "category",
        "Where the order's amount falls among earlier orders in its category (0 cheapest, 1 dearest)",
    ),
    Feature(
        "category_value_vs_customer_avg",
        "float",
        1.0,
        "category",
        "Average order amount in this category relative to the customer's average (a move to dearer goods)",
    ),
    Feature(
        "seller_volume_change",
        "float",
        1.0,
        "seller",
        "Seller's orders in the last 7 days against its weekly average in the 4 weeks before",
    ),
    Feature(
        "days_to_festival",
        "float",
        FESTIVAL_LOOKAHEAD_DAYS,
        "order",
        "Days until the next festival starts (0 during one, at most 30): outfits bought for an occasion",
    ),
    Feature(
        "customer_days_since_last_order",
        "float",
        NEVER,
        "customer",
        "Days since the customer's previous order (shopping in bursts, e.g. for an occasion)",
    ),
    # A customer with this seller and in this category (issue 14): shill buyers come back to the seller
    # they prop up; a customer who returns what they buy in a category does it again there.
    Feature(
        "customer_seller_orders",
        "int",
        0.0,
        "customer_seller",
        "Orders the customer placed with this seller before",
    ),
    Feature(
        "customer_seller_claims",
        "int",
        0.0,
        "customer_seller",
        "Damage or mismatch claims the customer made on this seller's orders before",
        direction=1,
    ),
    Feature(
        "seller_repeat_order_share",
        "float",
        0.1,
        "seller",
        "Share of the seller's orders placed by buyers who had bought from it before",
    ),
    Feature(
        "customer_category_returns",
        "int",
        0.0,
        "customer_category",
        "Orders in this category the customer returned before",
        direction=1,
    ),
    Feature(
        "customer_category_return_rate",
        "float",
        0.0,
        "customer_category",
        "Share of the customer's past orders in this category returned",
        direction=1,
    ),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
RISK_SIGNALS: frozenset[str] = frozenset(f.name for f in FEATURES if f.direction > 0)
ENTITY_GROUPS: tuple[str, ...] = ("product", "seller", "category", "region")
# Items linking the customers who share them: the delivery address (always) and each optional
# identifier an order may carry (group -> OrderContext field; the caller hashes them, we never see raw
# card numbers, phone numbers or addresses of devices).
LINK_IDENTIFIERS: dict[str, str] = {
    "card": "card_fingerprint",
    "device": "device_id",
    "phone": "phone_hash",
    "ip": "ip_prefix",
}
LINK_GROUPS: tuple[str, ...] = ("address", *LINK_IDENTIFIERS)
# The features table's entity name of each link group's item (entity#value). A card's link item is
# `card_link#`: `card#` is the payments lane's card aggregate (returnguard.payments), another layout.
LINK_ITEMS: dict[str, str] = {group: "card_link" if group == "card" else group for group in LINK_GROUPS}

# Card payments (issue 12): a payment's features, computed by returnguard.payments from the payment
# aggregates (customer, card, terminal, merchant). Point-in-time like the order features; terminal and
# merchant fraud rates count only fraud labels known before the payment's UTC day (label delay).
PAYMENT_SPEND_WINDOWS_DAYS = (1, 7, 30)
PAYMENT_VELOCITY_MS = (10 * MINUTE_MS, HOUR_MS)
CARD_WINDOW_MS = DAY_MS
TERMINAL_WINDOWS_DAYS = (7, 28)
# Beta prior for terminal and merchant fraud rates: an unseen terminal starts at 1% fraud.
FRAUD_PRIOR_FRAUDS = 0.1
FRAUD_PRIOR_PAYMENTS = 10.0
PAYMENT_FEATURES: tuple[Feature, ...] = (
    Feature("payment_amount", "float", 0.0, "payment", "Payment amount"),
    Feature("payment_card_not_present", "bool", 0.0, "payment", "Card not present (online payment)"),
    *(
        Feature(
            f"customer_payments_{d}d",
            "int",
            0.0,
            "customer",
            f"Card payments by the customer in the last {d} days",
        )
        for d in PAYMENT_SPEND_WINDOWS_DAYS
    ),
    *(
        Feature(
            f"customer_spend_{d}d", "float", 0.0, "customer", f"Customer's card spend in the last {d} days"
        )
        for d in PAYMENT_SPEND_WINDOWS_DAYS
    ),
    Feature("customer_avg_payment_30d", "float", 0.0, "customer", "Customer's average payment over 30 days"),
    Feature(
        "amount_vs_customer_avg_30d",
        "float",
        1.0,
        "customer",
        "Payment amount relative to the 30-day average",
    ),
    Feature(
        "customer_payments_last_10m",
        "int",
        0.0,
        "customer",
        "Card payments by the customer in the previous 10 minutes",
        direction=1,
    ),
    Feature(
        "customer_payments_last_1h",
        "int",
        0.0,
        "customer",
        "Card payments by the customer in the previous hour",
        direction=1,
    ),
    Feature(
        "card_payments_last_1h",
        "int",
        0.0,
        "card",
        "Payments with this card in the previous hour",
        direction=1,
    ),
    Feature("card_payments_last_24h", "int", 0.0, "card", "Payments with this card in the previous 24 hours"),
    Feature("card_spend_last_24h", "float", 0.0, "card", "Spend on this card in the previous 24 hours"),
    Feature("card_age_days", "float", NEVER, "card", "Days since the card's first payment"),
    Feature(
        "card_is_new_for_customer",
        "bool",
        1.0,
        "card",
        "Card the customer never paid with before",
        direction=1,
    ),
    Feature(
        "customer_distinct_cards", "int", 0.0, "customer", "Distinct cards the customer paid with before"
    ),
    Feature(
        "terminal_payments_28d",
        "int",
        0.0,
        "terminal",
        "Payments at this terminal in the 28 days before today",
    ),
    *(
        Feature(
            f"terminal_fraud_rate_{d}d",
            "float",
            FRAUD_PRIOR_FRAUDS / FRAUD_PRIOR_PAYMENTS,
            "terminal",
            f"Known fraud at this terminal over the {d} days before today",
            direction=1,
        )
        for d in TERMINAL_WINDOWS_DAYS
    ),
    Feature(
        "merchant_fraud_rate_28d",
        "float",
        FRAUD_PRIOR_FRAUDS / FRAUD_PRIOR_PAYMENTS,
        "merchant",
        "Known fraud at this merchant over the 28 days before today",
        direction=1,
    ),
)
PAYMENT_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in PAYMENT_FEATURES)


# ------------------------------------------------------------------------------ the return lane
# One return request's features (issue 11), computed as of the request's time: its own facts, its
# reason text, and what the stores knew strictly before it. Computed by `returnguard.returns`
# (online and reference replay), glue_jobs/return_features.py (Spark) and fed by the same stream
# aggregates as the order lane plus the `text#` link items. A name also in FEATURES is the order
# spec's own Feature (FEATURES_BY_NAME[name]): exactly the same meaning, as of the event's time.
RETURN_REASON_CODES: tuple[str, ...] = (
    "damaged",
    "defective",
    "empty_box",
    "wrong_item",
    "size_fit",
    "not_as_described",
    "quality",
    "changed_mind",
    "late_delivery",
)
# Claims by type: what a return request alleges, grouped the way inspections check them.
CLAIM_TYPES: dict[str, frozenset[str]] = {
    "damage": frozenset({"damaged", "defective", "empty_box"}),
    "mismatch": frozenset({"wrong_item", "not_as_described", "missing_parts"}),
    "fit_quality": frozenset({"size_fit", "quality"}),
}
TEXT_LINK_CAP = LINK_CAP  # a text item remembers its earliest customers only, as addresses do
TEXT_LANGUAGES: tuple[str, ...] = ("en", "hi", "hinglish")

RETURN_FEATURES: tuple[Feature, ...] = (
    # the request itself (seed 000: order_value, return_reason one-hot, damaged_flag)
    Feature("order_value", "float", 0.0, "return", "Amount paid for the order being returned"),
    Feature(
        "refund_ratio", "float", 1.0, "return", "Refund asked for as a share of what was paid", direction=1
    ),
    Feature("days_since_delivery", "float", 0.0, "return", "Days from delivery to the return request"),
    *(
        Feature(f"reason_{code}", "bool", 0.0, "return", f"Return reason: {code.replace('_', ' ')}")
        for code in RETURN_REASON_CODES
    ),
    Feature("damaged_flag", "bool", 0.0, "return", "The request claims the item arrived damaged or empty"),
    Feature("return_by_pickup", "bool", 0.0, "return", "Return collected by courier pickup"),
    Feature(
        "pickup_address_differs",
        "bool",
        0.0,
        "return",
        "Pickup address differs from the order's delivery address",
        direction=1,
    ),
    Feature("return_item_count", "int", 1.0, "return", "Items in the return request"),
    # the reason text, read in pure Python (never by a model that could be talked to)
    Feature("reason_text_length", "int", 0.0, "text", "Length of the customer's reason text"),
    Feature("reason_text_hindi", "bool", 0.0, "text", "Reason text written in Hindi (Devanagari)"),
    Feature("reason_text_hinglish", "bool", 0.0, "text", "Reason text written in Hinglish"),
    Feature("reason_text_supports_code", "bool", 0.0, "text", "Reason text describes the chosen reason"),
    Feature(
        "reason_text_contradicts_code",
        "bool",
        0.0,
        "text",
        "Reason text describes a different reason than the one chosen",
    ),
    Feature(
        "reason_text_other_customers",
        "int",
        0.0,
        "text",
        "Other customers who sent the same reason text before",
        direction=1,
    ),
    # the customer's history strictly before the request (seed 000: return_count, days_since_last_return)
    FEATURES_BY_NAME["customer_account_age_days"],
    FEATURES_BY_NAME["customer_order_count"],
    Feature("return_count", "int", 0.0, "customer", "Returns the customer requested before", direction=1),
    Feature(
        "customer_return_share",
        "float",
        0.0,
        "customer",
        "Returns before as a share of the customer's orders before",
        direction=1,
    ),
    Feature(
        "days_since_last_return", "float", NEVER, "customer", "Days since the customer's previous return"
    ),
    FEATURES_BY_NAME["customer_returns_last_30d"],
    *(
        Feature(
            f"customer_{claim}_claims_30d",
            "int",
            0.0,
            "customer",
            f"{claim.replace('_', '/').capitalize()} claims by the customer in the last 30 days",
            direction=1,
        )
        for claim in CLAIM_TYPES
    ),
    FEATURES_BY_NAME["customer_damaged_claims"],
    # the product's, seller's and category's rates (smoothed; same meaning as the order lane's)
    *(FEATURES_BY_NAME[f"{group}_return_rate"] for group in ("product", "category", "seller")),
    # their claim rates (damage or mismatch claims per order, smoothed; the order lane's seller_claim_rate).
    # No direction: a high rate is as often a faulty product or a careless seller as abusive customers.
    Feature(
        "product_claim_rate",
        "float",
        0.1,
        "product",
        "Share of the product's orders returned with a damage or mismatch claim",
    ),
    Feature(
        "category_claim_rate",
        "float",
        0.1,
        "category",
        "Share of the category's orders returned with a damage or mismatch claim",
    ),
    FEATURES_BY_NAME["seller_claim_rate"],
)
RETURN_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in RETURN_FEATURES)
RETURN_FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in RETURN_FEATURES}
RETURN_RISK_SIGNALS: frozenset[str] = frozenset(f.name for f in RETURN_FEATURES if f.direction > 0)
# The two lanes' specs by the name the model config and the API use for them.
LANES: dict[str, tuple[Feature, ...]] = {
    "order": FEATURES,
    "return": RETURN_FEATURES,
    "payment": PAYMENT_FEATURES,
}


class FeatureError(ValueError):
    """An order can't be turned into a feature vector; `field` names the culprit."""

    code = "invalid_order"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class OrderContext:
    """What the features need to know about the order being scored (not its history)."""

    order_id: str
    customer_id: str
    product_id: str
    seller_id: str
    category: str
    region: str
    order_time_ms: int
    amount_minor: int  # amount in minor units (paise, cents): sums stay exact
    payment_method: str
    delivery_address: str
    card_fingerprint: str | None = None  # the payment card's fingerprint, when paid by card
    device_id: str | None = None  # optional identifiers, hashed by the caller (docs/api.md)
    phone_hash: str | None = None
    ip_prefix: str | None = None

    @property
    def address_key(self) -> str:
        return address_key(self.delivery_address)


_SPACES = re.compile(r"\s+")


def normalize_address(address: str) -> str:
    """Lower-case, trimmed, single-spaced: the same normalisation the Spark job applies."""
    return _SPACES.sub(" ", address.strip().lower())


def address_key(address: str) -> str:
    """A stable, non-reversible key for a delivery address (first 16 hex digits of SHA-1)."""
    return hashlib.sha1(normalize_address(address).encode("utf-8")).hexdigest()[:16]


def pair_key(customer_id: str, other: str) -> str:
    """The key of a customer's item with a seller or a category: first 16 hex digits of the SHA-1 of
    '<length of the customer id>:<customer id><other>' (unambiguous for any ids)."""
    return hashlib.sha1(f"{len(customer_id)}:{customer_id}{other}".encode()).hexdigest()[:16]


def pair_ids(order: OrderContext) -> dict[str, str]:
    """The PAIR_GROUPS items an order touches (none for a missing seller or category)."""
    return {
        group: pair_key(order.customer_id, value)
        for group, field_name in PAIR_GROUPS.items()
        if (value := getattr(order, field_name))
    }


def amount_to_minor(amount: float) -> int:
    """Major units (1299.99) to minor units (129999); amounts carry at most two decimals."""
    return int(round(amount * 100))


def smoothed_rate(returns: int, orders: int) -> float:
    return (returns + RATE_PRIOR_RETURNS) / (orders + RATE_PRIOR_ORDERS)


def compute_features(
    order: OrderContext,
    customer: Mapping[str, Any] | None,
    entities: Mapping[str, Mapping[str, Any] | None] | None = None,
    recent_orders: Mapping[str, int] | None = None,
) -> dict[str, float]:
    """The feature vector of one order from its entities' aggregates, in FEATURE_NAMES order.

    `customer` is a customer aggregate (see `returnguard.aggregates`) or None for a customer never
    seen; `entities` maps "product", "seller", "category", "region", the LINK_GROUPS (the link
    items of the delivery address and of the order's identifiers) and the PAIR_GROUPS (the customer's
    items with the seller and the category) to their aggregates (or None).
    Aggregates may include events at or after the order time (a store updated by the stream); those
    are filtered out, so the vector only ever reflects what was known strictly before the order.
    `recent_orders` ({order id: time ms}) are the customer's orders the API has scored lately, which
    the stream may not have applied yet: they count in the two velocity features, once each, whether
    or not the aggregate has caught up with them (see `velocity_counts`).
    """
    t = order.order_time_ms
    entities = entities or {}
    vector: dict[str, float] = {f.name: f.default for f in FEATURES}
    vector["order_amount"] = order.amount_minor / 100
    vector["payment_is_cod"] = 1.0 if order.payment_method == "cod" else 0.0
    vector["is_festival_sale"] = 1.0 if is_festival_sale(t) else 0.0
    vector["days_to_festival"] = days_to_festival(t, FESTIVAL_LOOKAHEAD_DAYS)

    history = (0, 0) if customer is None else _customer_features(vector, order, customer)
    if recent_orders:
        short, long = velocity_counts(t, (customer or {}).get("recent_orders", ()), recent_orders)
        vector["customer_orders_last_60s"] = float(short)
        vector["customer_orders_last_1h"] = float(long)

    for group in ENTITY_GROUPS:
        aggregate = entities.get(group)
        returns, orders = (0, 0) if aggregate is None else _counts_before(aggregate, t)
        vector[f"{group}_return_rate"] = smoothed_rate(returns, orders)
    seller = entities.get("seller")
    if seller is not None:
        _seller_features(vector, t, seller)
    category = entities.get("category")
    if category is not None:
        _category_features(vector, order, category, *history)
    # a customer's items with the seller and the category: counters, like the entity rates (an order
    # scored after later events reads today's counts)
    with_seller = entities.get("customer_seller")
    if with_seller is not None:
        vector["customer_seller_orders"] = float(int(with_seller.get("order_count", 0)))
        vector["customer_seller_claims"] = float(int(with_seller.get("claim_count", 0)))
    in_category = entities.get("customer_category")
    if in_category is not None:
        orders, returns = int(in_category.get("order_count", 0)), int(in_category.get("return_count", 0))
        vector["customer_category_returns"] = float(returns)
        vector["customer_category_return_rate"] = returns / orders if orders > 0 else 0.0
    for group in LINK_GROUPS:
        link = entities.get(group)
        if link is not None:
            # [time_ms, return_id, customer_id, claim 0/1]: the item's earliest LINK_CAP returns
            linked = [r for r in link.get("returns", ()) if r[2] != order.customer_id and int(r[0]) < t]
            vector[f"{group}_linked_returns"] = float(len(linked))
            vector[f"{group}_linked_claims"] = float(sum(int(r[3]) for r in linked))
            vector[f"{group}_other_customers"] = float(
                sum(
                    1
                    for customer_id, first in link.get("customers", {}).items()
                    if customer_id != order.customer_id and int(first) < t
                )
            )
    return vector


def link_ids(order: OrderContext) -> dict[str, str]:
    """The link items an order touches: its delivery address and each identifier it carries."""
    ids = {"address": order.address_key}
    for group, field_name in LINK_IDENTIFIERS.items():
        value = getattr(order, field_name)
        if value:
            ids[group] = value
    return ids


def _customer_features(
    vector: dict[str, float], order: OrderContext, customer: Mapping[str, Any]
) -> tuple[int, int]:
    """Customer features from a customer aggregate (layout in `returnguard.aggregates`); returns the
    customer's (orders, amount sum in minor units) before the order.

    Counters cover every event applied; the recent lists let us drop events at or after t exactly,
    as long as t is not older than the aggregate's recent windows (always true when scoring live).
    """
    t = order.order_time_ms
    registered = customer.get("registered_at_ms")
    if registered is not None and int(registered) <= t:
        vector["customer_account_age_days"] = (t - int(registered)) / DAY_MS

    # [time_ms, order_id, amount_minor, address_key, returned_at, product_id, category]
    recent_orders = customer.get("recent_orders", ())
    recent_returns = customer.get("recent_returns", ())  # [time_ms, reason_code]
    later_orders = [o for o in recent_orders if int(o[0]) >= t]
    later_returns = [r for r in recent_returns if int(r[0]) >= t]
    order_count = int(customer.get("order_count", 0)) - len(later_orders)
    return_count = int(customer.get("return_count", 0)) - len(later_returns)
    amount_sum = int(customer.get("amount_sum_minor", 0)) - sum(int(o[2]) for o in later_orders)
    damaged = int(customer.get("damaged_claims", 0)) - sum(
        1 for r in later_returns if r[1] in DAMAGE_REASON_CODES
    )
    refusals = int(customer.get("cod_refusals", 0)) - sum(
        1 for r in later_returns if r[1] == COD_REFUSAL_REASON_CODE
    )

    vector["customer_order_count"] = float(order_count)
    vector["customer_return_count"] = float(return_count)
    vector["customer_return_rate"] = return_count / order_count if order_count > 0 else 0.0

    history = [o for o in recent_orders if int(o[0]) < t]
    last_orders = history[-RECENT_ORDERS:]
    if history:
        vector["customer_days_since_last_order"] = (t - int(history[-1][0])) / DAY_MS
    returned_recent = sum(1 for o in last_orders if o[4] is not None and int(o[4]) < t)
    vector["customer_returns_last_6_orders"] = float(returned_recent)
    vector["customer_return_rate_last_6"] = returned_recent / len(last_orders) if last_orders else 0.0

    returns_before = [int(r[0]) for r in recent_returns if int(r[0]) < t]
    vector["customer_returns_last_30d"] = float(sum(1 for r in returns_before if r >= t - RETURN_WINDOW_MS))
    last_return = max(returns_before) if returns_before else customer.get("last_return_ms")
    if last_return is not None and int(last_return) < t:
        vector["customer_days_since_last_return"] = (t - int(last_return)) / DAY_MS
    vector["customer_damaged_claims"] = float(damaged)
    vector["customer_cod_refusals"] = float(refusals)
    claims = customer.get("claims") or {}
    for claim in ("mismatch", "fit_quality"):
        later = sum(1 for r in later_returns if r[1] in CLAIM_TYPES[claim])
        vector[f"customer_{claim}_claims"] = float(int(claims.get(claim, 0)) - later)
    first_return = customer.get("first_return_ms")
    if first_return is not None and int(first_return) < t:
        vector["customer_days_since_first_return"] = (t - int(first_return)) / DAY_MS

    if order_count > 0:
        vector["customer_avg_order_amount"] = amount_sum / (order_count * 100)
        if amount_sum > 0:
            vector["amount_vs_customer_avg"] = (order.amount_minor * order_count) / amount_sum

    addresses = {key for key, first_used in customer.get("addresses", {}).items() if int(first_used) < t}
    vector["customer_distinct_addresses"] = float(len(addresses))
    vector["delivery_address_is_new"] = 0.0 if order.address_key in addresses else 1.0
    vector["customer_orders_last_60s"] = float(sum(1 for o in history if int(o[0]) >= t - VELOCITY_SHORT_MS))
    vector["customer_orders_last_1h"] = float(sum(1 for o in history if int(o[0]) >= t - VELOCITY_LONG_MS))
    last_hour = [o for o in history if int(o[0]) >= t - VELOCITY_LONG_MS and len(o) > 6]
    vector["customer_same_product_last_1h"] = float(sum(1 for o in last_hour if o[5] == order.product_id))
    vector["customer_same_category_last_1h"] = float(sum(1 for o in last_hour if o[6] == order.category))
    return order_count, amount_sum


def price_band(amount_minor: int) -> int:
    """The price band of an amount: how many PRICE_BAND_BOUNDS_MINOR it reaches."""
    return bisect.bisect_right(PRICE_BAND_BOUNDS_MINOR, amount_minor)


def _category_features(
    vector: dict[str, float],
    order: OrderContext,
    category: Mapping[str, Any],
    customer_orders: int,
    customer_amount_minor: int,
) -> None:
    """The order's price percentile in its category (orders in lower bands, half of those in its own)
    and the category's average amount against the customer's, from the category's counters (today's
    counts, like its return rate)."""
    bands = [int(count) for count in category.get("price_bands") or ()]
    orders = sum(bands)
    if orders == 0:
        return
    band = price_band(order.amount_minor)
    vector["category_price_percentile"] = (2 * sum(bands[:band]) + bands[band]) / (2 * orders)
    if customer_orders > 0 and customer_amount_minor > 0:
        # float / float, as Spark divides two longs: equal to the bit at any magnitude
        vector["category_value_vs_customer_avg"] = float(
            int(category.get("amount_sum_minor", 0)) * customer_orders
        ) / float(orders * customer_amount_minor)


def _seller_features(vector: dict[str, float], t: int, seller: Mapping[str, Any]) -> None:
    """Seller age from its first order (exact at any t); its claim rate from counters, like its return
    rate (an order scored late reads today's counts)."""
    first = seller.get("first_order_ms")
    if first is not None and int(first) < t:
        vector["seller_age_days"] = (t - int(first)) / DAY_MS
    orders = int(seller.get("order_count", 0))
    vector["seller_claim_rate"] = smoothed_rate(int(seller.get("claim_count", 0)), orders)
    # orders by a buyer who had bought from the seller before: every order but each buyer's first
    vector["seller_repeat_order_share"] = smoothed_rate(orders - int(seller.get("buyers", orders)), orders)
    # whole UTC days strictly before the order's, so exact at any t (as long as the item still keeps them)
    today = t // DAY_MS
    recent = baseline = 0
    for day, count in seller.get("daily_orders", ()):
        if today - SELLER_RECENT_DAYS <= int(day) < today:
            recent += int(count)
        elif today - SELLER_DAYS_KEPT <= int(day) < today - SELLER_RECENT_DAYS:
            baseline += int(count)
    weeks = SELLER_BASELINE_DAYS // SELLER_RECENT_DAYS  # smoothed by one order a week
    vector["seller_volume_change"] = (weeks * recent + weeks) / (baseline + weeks)


def claim_types(reason_code: str) -> list[str]:
    """The CLAIM_TYPES a return reason belongs to (none for a plain return)."""
    return [claim for claim, codes in CLAIM_TYPES.items() if reason_code in codes]


def velocity_counts(
    t: int, aggregate_orders: Iterable[Sequence[Any]], recent_orders: Mapping[str, int]
) -> tuple[int, int]:
    """(orders in [t - 60 s, t), orders in [t - 1 h, t)) over the aggregate's recent orders and the
    orders the API recorded, each order id counted once: an order the stream has applied since the
    API recorded it is in both, and counts one."""
    times = {str(o[1]): int(o[0]) for o in aggregate_orders}
    for order_id, time_ms in recent_orders.items():
        times.setdefault(order_id, int(time_ms))
    before = [time_ms for time_ms in times.values() if time_ms < t]
    return (
        sum(1 for time_ms in before if time_ms >= t - VELOCITY_SHORT_MS),
        sum(1 for time_ms in before if time_ms >= t - VELOCITY_LONG_MS),
    )


def _counts_before(aggregate: Mapping[str, Any], t: int) -> tuple[int, int]:
    """(returns, orders) of a product/seller/category/region.

    These keep counters only (a popular product sees thousands of events an hour), so an order
    scored after its entities saw later events gets today's counts: a small, documented staleness.
    """
    return int(aggregate.get("return_count", 0)), int(aggregate.get("order_count", 0))


def vector_as_list(vector: Mapping[str, float]) -> list[float]:
    """The vector in the model's feature order (what CSV input and the model expect)."""
    return [float(vector[name]) for name in FEATURE_NAMES]


def validate_vector(instance: Mapping[str, Any], spec: Sequence[Feature] = FEATURES) -> list[float]:
    """Check one inference instance (name -> number) against a lane's spec (default: orders); returns
    it in model order.

    Missing, unknown, or non-numeric features raise FeatureError naming the feature.
    """
    unknown = sorted(set(instance) - {f.name for f in spec})
    if unknown:
        raise FeatureError(f"unknown feature(s): {', '.join(unknown)}", field=unknown[0])
    values: list[float] = []
    for feature in spec:
        if feature.name not in instance:
            raise FeatureError(f"missing feature: {feature.name}", field=feature.name)
        value = instance[feature.name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FeatureError(
                f"feature {feature.name} must be a number, got {type(value).__name__}", field=feature.name
            )
        if value != value or value in (float("inf"), float("-inf")):
            raise FeatureError(f"feature {feature.name} must be finite", field=feature.name)
        values.append(float(value))
    return values
