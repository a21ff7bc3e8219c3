"""The return lane's domain: a return request as the features see it, inspection outcomes (the labels),
the reason-text signals, and the online computation of one request's feature vector.

The feature names, order and meaning are declared in `returnguard.features.RETURN_FEATURES` (the one
spec); this module computes them. Pure Python: the scoring path imports it.

Point-in-time: a request's vector uses the request itself and what the stores knew strictly before
its time. The customer, product, seller and category aggregates are the order lane's (a return event
already updates them); the only item the return lane adds is the `text#<key>` link item (which
customers sent the same reason text, and when first).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from returnguard.aggregates import AggregateStore, ReturnContext
from returnguard.calendar import DAY_MS
from returnguard.features import (
    CLAIM_TYPES,
    DAMAGE_REASON_CODES,
    LINK_IDENTIFIERS,
    RETURN_FEATURES,
    RETURN_REASON_CODES,
    RETURN_WINDOW_MS,
    OrderContext,
    address_key,
    amount_to_minor,
    compute_features,
    smoothed_rate,
)
from returnguard.tables import entity_key

if TYPE_CHECKING:
    from returnguard.schemas import ReturnRequest

MAX_REASON_TEXT = 1_000  # characters of free text a request may carry (the API refuses more)
RATED_GROUPS = ("product", "seller", "category")  # the entities whose claim rates a request reads

# ---------------------------------------------------------------------------------------- labels
# What the warehouse found when it inspected the returned parcel (or that none came back). Known
# later than the request: each outcome carries its own `labeled_at`. `abuse` is the model's label.


@dataclass(frozen=True)
class InspectionOutcome:
    name: str
    abuse: bool
    description: str


INSPECTION_OUTCOMES: tuple[InspectionOutcome, ...] = (
    InspectionOutcome(
        "item_fine", False, "Item came back as the request described (unused, or with the fault claimed)"
    ),
    InspectionOutcome("used_worn", True, "Item was used or worn and sent back (wardrobing)"),
    InspectionOutcome("swapped_or_counterfeit", True, "A different, cheaper or fake item came back"),
    InspectionOutcome("empty_box", True, "The parcel came back without the item"),
    InspectionOutcome("customer_damage", True, "Damage the customer caused, claimed as arrived damaged"),
    InspectionOutcome("never_shipped_back", True, "Refund asked for but nothing was handed over in time"),
)
OUTCOMES_BY_NAME: dict[str, InspectionOutcome] = {o.name: o for o in INSPECTION_OUTCOMES}
ABUSIVE_OUTCOMES: frozenset[str] = frozenset(o.name for o in INSPECTION_OUTCOMES if o.abuse)


def outcome_label(outcome: str) -> int:
    """1 for an abusive inspection outcome, 0 for `item_fine`; an unknown outcome raises ValueError."""
    if outcome not in OUTCOMES_BY_NAME:
        raise ValueError(f"unknown inspection outcome {outcome!r}; one of {', '.join(OUTCOMES_BY_NAME)}")
    return int(OUTCOMES_BY_NAME[outcome].abuse)


# ----------------------------------------------------------------------------------- the request


@dataclass(frozen=True)
class ReturnRequestContext:
    """What the return features need to know about the request being scored (not its history)."""

    return_id: str
    order_id: str
    customer_id: str
    product_id: str
    seller_id: str
    category: str
    region: str
    request_time_ms: int  # the request's `return_date`
    delivered_at_ms: int | None  # None: the order was never delivered
    order_amount_minor: int  # what was paid for the order, minor units
    refund_amount_minor: int  # what the customer asks back, minor units
    reason_code: str
    reason_text: str  # "" when the customer wrote nothing
    return_method: str  # pickup, drop_off
    item_count: int
    delivery_address: str  # the order's delivery address
    pickup_address: str | None  # None: same as delivery / not a pickup
    # the returned order's identifiers, when known (docs/events.md: a return event may carry them, and
    # the return then counts on each one's link item)
    card_fingerprint: str | None = None
    device_id: str | None = None
    phone_hash: str | None = None
    ip_prefix: str | None = None

    @property
    def text_key(self) -> str | None:
        return text_key(self.reason_text)

    def as_return(self) -> ReturnContext:
        """The return event this request is, as the aggregates apply it."""
        return ReturnContext(
            return_id=self.return_id,
            order_id=self.order_id,
            customer_id=self.customer_id,
            product_id=self.product_id,
            seller_id=self.seller_id,
            category=self.category,
            region=self.region,
            return_time_ms=self.request_time_ms,
            reason_code=self.reason_code,
            reason_text_key=self.text_key,
            delivery_address=self.delivery_address or None,
            **{name: getattr(self, name) for name in LINK_IDENTIFIERS.values()},
        )


# ----------------------------------------------------------------------------------- reason text

_DEVANAGARI = re.compile(r"[\u0900-\u097F]")
_LATIN = re.compile(r"[A-Za-z]")
# Words that only Hinglish (Hindi in Latin letters) uses; one of them makes a Latin text Hinglish.
_HINGLISH = frozenset(
    [
        "hai",
        "hain",
        "nahi",
        "nahin",
        "kya",
        "mujhe",
        "mera",
        "meri",
        "mere",
        "bhai",
        "yaar",
        "diya",
        "gaya",
        "gayi",
        "tha",
        "thi",
        "kar",
        "karo",
        "karna",
        "wapas",
        "paisa",
        "paise",
        "chahiye",
        "bilkul",
        "ekdum",
        "bahut",
        "accha",
        "acha",
        "bekar",
        "bakwas",
        "kharab",
        "aur",
        "lekin",
        "pehle",
        "abhi",
        "jaldi",
        "kripya",
        "kyun",
        "kyu",
        "hua",
        "hui",
        "ho",
        "raha",
        "rahi",
    ]
)
# Words that tell what a text is about, per reason code, in English, Hinglish and Hindi.
_REASON_WORDS: dict[str, frozenset[str]] = {
    "damaged": frozenset(
        [
            "damaged",
            "damage",
            "broken",
            "broke",
            "cracked",
            "crack",
            "torn",
            "dent",
            "dented",
            "scratch",
            "scratched",
            "leaked",
            "tuta",
            "tooti",
            "toota",
            "phata",
            "kharab",
            "टूटा",
            "टूटी",
            "फटा",
            "खराब",
        ]
    ),
    "defective": frozenset(
        [
            "defective",
            "faulty",
            "working",
            "work",
            "dead",
            "stopped",
            "charge",
            "charging",
            "switch",
            "start",
            "kaam",
            "chalta",
            "band",
            "chal",
            "काम",
            "चल",
            "बंद",
            "खराब",
        ]
    ),
    "empty_box": frozenset(["empty", "nothing", "missing", "khali", "khaali", "gayab", "खाली", "गायब"]),
    "wrong_item": frozenset(
        ["wrong", "different", "another", "colour", "color", "model", "galat", "dusra", "गलत", "दूसरा"]
    ),
    "size_fit": frozenset(
        [
            "size",
            "small",
            "big",
            "large",
            "tight",
            "loose",
            "fit",
            "fitting",
            "chhota",
            "bada",
            "tight",
            "dheela",
            "साइज",
            "छोटा",
            "बड़ा",
            "टाइट",
            "ढीला",
        ]
    ),
    "not_as_described": frozenset(
        [
            "described",
            "description",
            "picture",
            "photo",
            "image",
            "listing",
            "shown",
            "fake",
            "original",
            "alag",
            "फोटो",
            "तस्वीर",
            "अलग",
            "नकली",
        ]
    ),
    "quality": frozenset(
        ["quality", "cheap", "poor", "material", "fabric", "thin", "ghatiya", "bekar", "quality", "घटिया"]
    ),
    "changed_mind": frozenset(
        [
            "mind",
            "need",
            "needed",
            "want",
            "longer",
            "anymore",
            "instead",
            "zaroorat",
            "nahi",
            "चाहिए",
            "जरूरत",
        ]
    ),
    "late_delivery": frozenset(["late", "delay", "delayed", "days", "week", "der", "deri", "देर"]),
}


def normalize_text(text: str) -> str:
    """NFKC, lower-case, punctuation to spaces, single-spaced: the form texts are compared in."""
    text = unicodedata.normalize("NFKC", text).lower()
    # letters, digits and combining marks (Devanagari vowel signs are marks, not letters) make words
    kept = "".join(c if c.isalnum() or unicodedata.category(c)[0] == "M" else " " for c in text)
    return " ".join(kept.split())


def text_key(text: str) -> str | None:
    """A stable, non-reversible key of a reason text (16 hex digits of SHA-1); None for no text."""
    normalized = normalize_text(text)
    if not normalized:
        return None
    return hashlib.sha1(normalized.encode("utf-8")).hexdigest()[:16]


def text_language(text: str) -> str:
    """ "hi" (any Devanagari), "hinglish" (Latin letters with a Hinglish word), "en", or "" (no text)."""
    if _DEVANAGARI.search(text):
        return "hi"
    if not _LATIN.search(text):
        return ""
    words = set(normalize_text(text).split())
    return "hinglish" if words & _HINGLISH else "en"


def reason_agreement(reason_code: str, text: str) -> tuple[bool, bool]:
    """(the text describes the chosen reason, the text describes another reason and not this one)."""
    words = set(normalize_text(text).split())
    if not words:
        return False, False
    supports = bool(words & _REASON_WORDS.get(reason_code, frozenset()))
    other = any(words & vocabulary for code, vocabulary in _REASON_WORDS.items() if code != reason_code)
    return supports, other and not supports


# ------------------------------------------------------------------------------ the online vector


def claim_type(reason_code: str) -> str | None:
    for name, codes in CLAIM_TYPES.items():
        if reason_code in codes:
            return name
    return None


def compute_return_features(
    request: ReturnRequestContext,
    customer: Mapping[str, Any] | None,
    entities: Mapping[str, Mapping[str, Any] | None] | None = None,
    text: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """The feature vector of one return request, in RETURN_FEATURE_NAMES order.

    `customer` and `entities` ("product", "seller", "category", "region") are the order lane's
    aggregates (`returnguard.aggregates`), None for one never seen; `text` is the `text#<key>` link
    item of the request's reason text (None: never seen, or no text). As with orders, what an
    aggregate holds at or after the request's time is filtered out. The customer's and entities'
    history features are the order lane's own computation as of the request's time (not copied).
    """
    t = request.request_time_ms
    vector: dict[str, float] = {f.name: f.default for f in RETURN_FEATURES}

    paid = request.order_amount_minor
    vector["order_value"] = paid / 100
    vector["refund_ratio"] = request.refund_amount_minor / paid if paid > 0 else 1.0
    if request.delivered_at_ms is not None and request.delivered_at_ms <= t:
        vector["days_since_delivery"] = (t - request.delivered_at_ms) / DAY_MS
    if request.reason_code in RETURN_REASON_CODES:
        vector[f"reason_{request.reason_code}"] = 1.0
    vector["damaged_flag"] = 1.0 if request.reason_code in DAMAGE_REASON_CODES else 0.0
    vector["return_by_pickup"] = 1.0 if request.return_method == "pickup" else 0.0
    if request.pickup_address is not None and request.return_method == "pickup":
        differs = address_key(request.pickup_address) != address_key(request.delivery_address)
        vector["pickup_address_differs"] = 1.0 if differs else 0.0
    vector["return_item_count"] = float(request.item_count)

    reason = request.reason_text
    vector["reason_text_length"] = float(len(reason))
    language = text_language(reason)
    vector["reason_text_hindi"] = 1.0 if language == "hi" else 0.0
    vector["reason_text_hinglish"] = 1.0 if language == "hinglish" else 0.0
    supports, contradicts = reason_agreement(request.reason_code, reason)
    vector["reason_text_supports_code"] = 1.0 if supports else 0.0
    vector["reason_text_contradicts_code"] = 1.0 if contradicts else 0.0
    if text is not None and request.text_key is not None:
        vector["reason_text_other_customers"] = float(
            sum(
                1
                for customer_id, first in text.get("customers", {}).items()
                if customer_id != request.customer_id and int(first) < t
            )
        )

    # The order lane's computation as of the request's time, for the customer and entity history.
    as_order = OrderContext(
        order_id=request.order_id,
        customer_id=request.customer_id,
        product_id=request.product_id,
        seller_id=request.seller_id,
        category=request.category,
        region=request.region,
        order_time_ms=t,
        amount_minor=paid,
        payment_method="",
        delivery_address=request.delivery_address,
    )
    history = compute_features(as_order, customer, entities)
    for name in (
        "customer_account_age_days",
        "customer_order_count",
        "customer_returns_last_30d",
        "customer_damaged_claims",
        "product_return_rate",
        "category_return_rate",
        "seller_return_rate",
    ):
        vector[name] = history[name]
    for group in RATED_GROUPS:  # counters, like the return rates (features._counts_before)
        entity = (entities or {}).get(group) or {}
        vector[f"{group}_claim_rate"] = smoothed_rate(
            int(entity.get("claim_count", 0)), int(entity.get("order_count", 0))
        )
    vector["return_count"] = history["customer_return_count"]
    vector["customer_return_share"] = history["customer_return_rate"]
    vector["days_since_last_return"] = history["customer_days_since_last_return"]
    if customer is not None:
        claims = dict.fromkeys(CLAIM_TYPES, 0)
        for when, code in ((int(r[0]), str(r[1])) for r in customer.get("recent_returns", ())):
            kind = claim_type(code)
            if kind is not None and t - RETURN_WINDOW_MS <= when < t:
                claims[kind] += 1
        for kind, count in claims.items():
            vector[f"customer_{kind}_claims_30d"] = float(count)
    return vector


def request_context(request: ReturnRequest) -> ReturnRequestContext:
    """The API's validated return request as the features see it (missing seller/category: "")."""
    return ReturnRequestContext(
        return_id=request.return_id,
        order_id=request.order_id,
        customer_id=request.customer_id,
        product_id=request.product_id,
        seller_id=request.seller_id or "",
        category=request.category or "",
        region=request.region,
        request_time_ms=int(request.return_date.timestamp() * 1000),
        delivered_at_ms=None
        if request.delivered_at is None
        else int(request.delivered_at.timestamp() * 1000),
        order_amount_minor=amount_to_minor(request.order_amount),
        refund_amount_minor=amount_to_minor(request.refund_amount),
        reason_code=request.reason_code,
        reason_text=request.reason or "",
        return_method=request.return_method,
        item_count=sum(item.quantity for item in request.items) or 1,
        delivery_address=request.delivery_address,
        pickup_address=request.pickup_address,
    )


def feature_keys(request: ReturnRequestContext) -> dict[str, str]:
    """group -> `features` table key of every item the vector reads: one BatchGetItem."""
    keys = {
        "customer": entity_key("customer", request.customer_id),
        "product": entity_key("product", request.product_id),
        "region": entity_key("region", request.region),
    }
    if request.seller_id:
        keys["seller"] = entity_key("seller", request.seller_id)
    if request.category:
        keys["category"] = entity_key("category", request.category)
    if request.text_key is not None:
        keys["text"] = entity_key("text", request.text_key)
    return keys


def features_from_items(
    request: ReturnRequestContext, items: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, float]:
    """The vector from the items `feature_keys` named (group -> item, None or absent: not found)."""
    entities = {group: items.get(group) for group in ("product", "seller", "category", "region")}
    return compute_return_features(request, items.get("customer"), entities, items.get("text"))


def store_items(store: AggregateStore, request: ReturnRequestContext) -> dict[str, Any]:
    """What `feature_keys` would fetch, read from an in-memory store (the reference and unit tests)."""
    items: dict[str, Any] = {"customer": store.customers.get(request.customer_id)}
    for group, eid in (
        ("product", request.product_id),
        ("seller", request.seller_id),
        ("category", request.category),
        ("region", request.region),
        ("text", request.text_key),
    ):
        items[group] = store.entities.get((group, eid)) if eid else None
    return items


def replaced(event: ReturnContext, request: ReturnContext) -> ReturnContext:
    """The request's return event in place of `event` (the same return): the request's facts, and the
    order's delivery address and identifiers the event carries where the request names none, so the
    return still counts on the link items the event would have counted it on."""
    kept = {
        name: getattr(event, name)
        for name in ("delivery_address", *LINK_IDENTIFIERS.values())
        if not getattr(request, name) and getattr(event, name)
    }
    return replace(request, **kept) if kept else request


def replay_returns(
    profiles: Mapping[str, int],
    orders: Iterable[OrderContext],
    returns: Iterable[ReturnContext],
    requests: Iterable[ReturnRequestContext],
) -> Iterator[tuple[ReturnRequestContext, dict[str, float]]]:
    """The reference for the return lane: walk the history in event-time order and yield each request
    with its vector, computed before anything at its millisecond is applied (strictly before).

    `returns` are every return event (a request's own event included; one whose id is a request's
    is replaced by the request's, which carries its reason text's key, see `replaced`).
    """
    requests = list(requests)
    by_id = {r.return_id: r.as_return() for r in requests}
    events: list[tuple[int, int, str, Any]] = [(o.order_time_ms, 0, o.order_id, o) for o in orders]
    seen = set()
    for ret in returns:
        seen.add(ret.return_id)
        ret = replaced(ret, by_id[ret.return_id]) if ret.return_id in by_id else ret
        events.append((ret.return_time_ms, 1, ret.return_id, ret))
    events += [(r.return_time_ms, 1, r.return_id, r) for rid, r in by_id.items() if rid not in seen]
    probes = sorted(((r.request_time_ms, r.return_id, r) for r in requests), key=lambda p: (p[0], p[1]))
    events.sort(key=lambda e: (e[0], e[1], e[2]))

    store = AggregateStore()
    for customer_id, registered in profiles.items():
        store.apply_profile(customer_id, registered)
    i = 0
    for t, _, request in probes:
        while i < len(events) and events[i][0] < t:
            event = events[i][3]
            if isinstance(event, OrderContext):
                store.apply_order(event)
            else:
                store.apply_return(event)
            i += 1
        yield request, features_from_items(request, store_items(store, request))
