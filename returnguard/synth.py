"""Deterministic synthetic marketplace data (customers, sellers, products, orders, returns, labels) with hidden abuse.

The generator stands in for a real e-commerce history so the whole pipeline (Spark features, training,
stream consumer, rules, demo) runs offline. It plants the return-abuse behaviours the engine must learn,
legitimate returns that look alike, and a slow drift over time, all vectorised with numpy so a million
orders take seconds. Same config, same bytes: every random draw comes from a stream seeded by
(seed, stage), so changing one stage does not reshuffle the others.

Ground truth (`labels.abuse_type`) is decided from hidden customer segments and never written into
anything the features read: the features only ever see orders and returns before an order's time.
numpy/pandas are fine here: this module is never on the scoring path (and is excluded from mypy).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from returnguard.aggregates import ReturnContext
from returnguard.calendar import DAY_MS, WINDOWS, ranges_ms
from returnguard.features import LINK_IDENTIFIERS, OrderContext, amount_to_minor

MINUTE_MS = 60_000
OCCASIONS = 6  # a wardrober's own occasions over the range (weddings, trips, parties)
HOUR_MS = 3_600_000
IST_OFFSET_MS = 19_800_000  # +05:30

CATEGORIES = (
    "fashion",
    "footwear",
    "electronics",
    "mobiles",
    "beauty",
    "home",
    "books",
    "toys",
    "sports",
    "grocery",
)
# Share of the catalogue and of orders per category, median price (INR), legitimate return probability.
_CATEGORY_SHARE = np.array([0.24, 0.08, 0.10, 0.05, 0.10, 0.14, 0.08, 0.06, 0.06, 0.09])
_CATEGORY_PRICE = np.array([899.0, 1499.0, 3999.0, 14999.0, 449.0, 1199.0, 349.0, 799.0, 1199.0, 299.0])
_CATEGORY_RETURN = np.array([0.17, 0.14, 0.06, 0.05, 0.035, 0.06, 0.02, 0.045, 0.06, 0.015])
_BRANDS = {
    "fashion": ("Urban Thread", "Kurta House", "DenimCo", "Saree Studio", "StreetLine", "Ethnic Loom"),
    "footwear": ("StepUp", "Trailblaze", "Mochi Works", "SoleMate", "RunFast"),
    "electronics": ("Voltix", "SoundWave", "PixelPro", "Nexon Digital", "HomeBeam"),
    "mobiles": ("Nova", "Zephyr", "Orbit", "Kestrel", "Lumo"),
    "beauty": ("Glow Veda", "Herbal Roots", "Pure Bloom", "SkinFirst"),
    "home": ("NestWell", "Casa Craft", "KitchenKing", "Cotton Home", "BrightLite"),
    "books": ("Penguin Lane", "Tara Press", "Lotus Books", "Scholar Hub"),
    "toys": ("FunBox", "KiddoKraft", "Tiny Tots", "PlayNation"),
    "sports": ("Fitline", "Cricket Pro", "YogaSutra", "GoActive"),
    "grocery": ("Annapurna", "Daily Fresh", "Spice Route", "Organic Farm"),
}

PAYMENT_METHODS = ("card", "upi", "netbanking", "wallet", "cod")
_PAYMENT_SHARE = np.array([0.20, 0.36, 0.08, 0.11, 0.25])

REASON_CODES = (
    "damaged",
    "defective",
    "empty_box",
    "wrong_item",
    "size_fit",
    "not_as_described",
    "quality",
    "changed_mind",
    "late_delivery",
    "refused_delivery",
)
_R = {code: i for i, code in enumerate(REASON_CODES)}
RETURN_STATUSES = ("requested", "approved", "rejected", "refunded")
RETURN_METHODS = ("pickup", "drop_off", "rto")
ABUSE_TYPES = (
    "none",
    "serial_returner",
    "wardrobing",
    "cod_refusal",
    "damage_claim",
    "empty_box",
    "account_churn",
    "seller_collusion",
)
_A = {name: i for i, name in enumerate(ABUSE_TYPES)}

# Hidden customer segments. Heavy returners are honest customers who return a lot (noise, not abuse).
SEGMENTS = ("honest", "heavy_returner", "serial_returner", "wardrober", "cod_refuser", "damage_claimer",
            "account_churn", "colluder")  # fmt: skip
_S = {name: i for i, name in enumerate(SEGMENTS)}
# Share of customers per segment at the start of the range and how much more they order than average.
_SEGMENT_SHARE = np.array([0.0, 0.06, 0.018, 0.022, 0.018, 0.013, 0.008, 0.005])
_SEGMENT_ACTIVITY = np.array([1.0, 1.2, 2.0, 1.5, 1.4, 1.4, 1.0, 1.6])

# State code, name, population tier, cash on delivery available, (city, PIN prefix, localities).
_REGIONS: tuple[tuple[str, str, int, bool, tuple[tuple[str, str, tuple[str, ...]], ...]], ...] = (
    ("MH", "Maharashtra", 1, True, (("Mumbai", "400", ("Andheri", "Bandra", "Dadar", "Powai")),
                                     ("Pune", "411", ("Kothrud", "Baner", "Hadapsar", "Wakad")))),
    ("KA", "Karnataka", 1, True, (("Bengaluru", "560", ("Koramangala", "Indiranagar", "Whitefield", "Jayanagar")),
                                   ("Mysuru", "570", ("Gokulam", "Vijayanagar")))),
    ("DL", "Delhi", 1, True, (("New Delhi", "110", ("Saket", "Dwarka", "Rohini", "Lajpat Nagar")),)),
    ("TN", "Tamil Nadu", 1, True, (("Chennai", "600", ("Adyar", "T Nagar", "Velachery", "Anna Nagar")),
                                    ("Coimbatore", "641", ("RS Puram", "Peelamedu")))),
    ("TG", "Telangana", 1, True, (("Hyderabad", "500", ("Madhapur", "Kukatpally", "Banjara Hills", "Gachibowli")),)),
    ("WB", "West Bengal", 1, True, (("Kolkata", "700", ("Salt Lake", "Howrah", "Ballygunge", "Dum Dum")),)),
    ("GJ", "Gujarat", 2, True, (("Ahmedabad", "380", ("Navrangpura", "Satellite", "Maninagar")),
                                 ("Surat", "395", ("Adajan", "Vesu")))),
    ("UP", "Uttar Pradesh", 2, True, (("Lucknow", "226", ("Gomti Nagar", "Aliganj", "Hazratganj")),
                                       ("Noida", "201", ("Sector 18", "Sector 62")))),
    ("RJ", "Rajasthan", 2, True, (("Jaipur", "302", ("Malviya Nagar", "Vaishali Nagar", "C Scheme")),)),
    ("KL", "Kerala", 2, True, (("Kochi", "682", ("Edappally", "Kakkanad", "Fort Kochi")),
                                ("Thiruvananthapuram", "695", ("Pattom", "Kowdiar")))),
    ("HR", "Haryana", 2, True, (("Gurugram", "122", ("DLF Phase 3", "Sohna Road", "Sector 56")),)),
    ("PB", "Punjab", 2, True, (("Ludhiana", "141", ("Model Town", "Sarabha Nagar")),
                                ("Amritsar", "143", ("Ranjit Avenue", "Lawrence Road")))),
    ("MP", "Madhya Pradesh", 2, True, (("Indore", "452", ("Vijay Nagar", "Palasia")),
                                        ("Bhopal", "462", ("Arera Colony", "MP Nagar")))),
    ("BR", "Bihar", 3, True, (("Patna", "800", ("Boring Road", "Kankarbagh", "Rajendra Nagar")),)),
    ("OR", "Odisha", 3, True, (("Bhubaneswar", "751", ("Saheed Nagar", "Patia", "Nayapalli")),)),
    ("AS", "Assam", 3, True, (("Guwahati", "781", ("Dispur", "Beltola", "Zoo Road")),)),
    ("JH", "Jharkhand", 3, True, (("Ranchi", "834", ("Lalpur", "Harmu", "Doranda")),)),
    ("UK", "Uttarakhand", 3, True, (("Dehradun", "248", ("Rajpur Road", "Vasant Vihar")),)),
    ("JK", "Jammu and Kashmir", 3, False, (("Srinagar", "190", ("Rajbagh", "Lal Chowk")),)),
    ("MN", "Manipur", 3, False, (("Imphal", "795", ("Thangal Bazar", "Lamphel")),)),
)  # fmt: skip
_REGION_POPULATION = np.array([12.0, 7.0, 5.0, 8.0, 4.5, 6.0, 6.0, 9.0, 4.0, 3.5, 3.0, 3.0, 4.0, 3.0, 2.0, 1.5, 1.5, 1.0,
                               0.8, 0.4])  # fmt: skip
_STREETS = ("MG Road", "Station Road", "Main Road", "Temple Street", "Gandhi Nagar", "Nehru Marg", "Park Street",
            "Ring Road", "Church Road", "Lake View Road", "Market Road", "1st Cross", "2nd Main", "Sector Road")  # fmt: skip
_BUILDINGS = (
    "",
    "",
    "",
    "Flat 2B, Sai Residency, ",
    "Shanti Apartments, ",
    "House no. ",
    "Plot ",
    "Block C, ",
)
_SELLER_WORDS = (("Shree", "Balaji", "Sai", "Royal", "Ganesh", "New", "Modern", "Laxmi", "Metro", "Sunrise", "Global",
                  "Krishna", "Om", "Star", "Silver"),
                 ("Traders", "Retail", "Enterprises", "Mart", "Store", "Emporium", "Distributors", "Collections",
                  "Bazaar", "Outlet"))  # fmt: skip

# Free-text comments per reason code; abusers draw from the same banks, so the text hints but never tells.
_COMMENTS: dict[str, tuple[str, ...]] = {
    "damaged": ("Product arrived damaged.", "The box was crushed and the item is broken.", "Screen cracked on arrival",
                "outer packaging torn, item scratched", "Received with a dent on the side.", "damaged in transit",
                "Glass was shattered when I opened it", "Item is broken, please refund."),
    "defective": ("Not working at all.", "Stopped working after one day", "Does not switch on.",
                  "Charging port is faulty", "Sound cuts in and out, defective piece", "Battery drains in an hour",
                  "device keeps restarting", "Manufacturing defect, stitching came off"),
    "empty_box": ("Box was empty when I opened it.", "Received an empty package", "Only the packaging came, no product",
                  "Seal was intact but nothing inside", "empty box delivered"),
    "wrong_item": ("Received a different product.", "Wrong colour sent", "Ordered size M, got XL",
                   "This is not the model I ordered", "wrong item delivered", "Got someone else's order"),
    "size_fit": ("Too small.", "Size does not fit, need one size bigger", "Too loose around the waist",
                 "Fits tight on the shoulders", "size chart was wrong", "Length too short", "Doesn't fit well",
                 "Ordered my usual size but it is too big"),
    "not_as_described": ("Colour is different from the photo.", "Material is not as described",
                         "Looks cheap compared to the pictures", "Not the same as shown on the website",
                         "Features listed are missing", "not as described"),
    "quality": ("Poor quality.", "Fabric quality is bad", "Colour faded after first wash", "Feels flimsy",
                "Quality not worth the price", "stitching is loose"),
    "changed_mind": ("No longer needed.", "Changed my mind", "Found it cheaper elsewhere", "Ordered by mistake",
                     "Bought a different one", "don't need it anymore"),
    "late_delivery": ("Delivered too late for the occasion.", "Delivery took two weeks", "Arrived after the function",
                      "Late delivery, no longer required"),
    "refused_delivery": ("", "Customer not available", "Refused at door", "customer refused to accept",
                         "Not ordered by me", "Cash not ready at delivery"),
}  # fmt: skip


@dataclass(frozen=True)
class SynthConfig:
    orders: int = 100_000
    seed: int = 7
    start: date = date(2024, 1, 1)
    days: int = 730

    @property
    def start_ms(self) -> int:
        return (
            int(datetime(self.start.year, self.start.month, self.start.day, tzinfo=timezone.utc).timestamp())
            * 1000
        )

    @property
    def end_ms(self) -> int:
        """Exclusive end of the time range."""
        return self.start_ms + self.days * DAY_MS

    @property
    def customers(self) -> int:
        return max(40, self.orders // 8)

    @property
    def products(self) -> int:
        return max(100, self.orders // 20)

    @property
    def sellers(self) -> int:
        return max(12, self.orders // 800)


@dataclass
class SyntheticData:
    customers: pd.DataFrame
    sellers: pd.DataFrame
    products: pd.DataFrame
    orders: pd.DataFrame
    returns: pd.DataFrame
    labels: pd.DataFrame
    regions: pd.DataFrame
    config: SynthConfig = field(default_factory=SynthConfig)


def _rng(config: SynthConfig, stage: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, stage])


def _utc(ms: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(ms, dtype="int64").astype("datetime64[ms]")).dt.tz_localize("UTC")


def _ids(prefix: str, width: int, n: int) -> list[str]:
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def _festival_mask(times_ms: np.ndarray) -> np.ndarray:
    """Vectorised `calendar.is_festival_sale`: the same windows, the same half-open bounds in epoch ms."""
    mask = np.zeros(times_ms.shape, dtype=bool)
    for start, end, _ in ranges_ms():
        mask |= (times_ms >= start) & (times_ms < end)
    return mask


def _choice(rng: np.random.Generator, probabilities: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(probabilities / probabilities.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def _row_choice(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One index per row of a (rows, k) weight matrix."""
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(len(weights))[:, None]
    return np.minimum((u > cdf).sum(axis=1), weights.shape[1] - 1)


class _Timeline:
    """Minute-resolution demand curve: growth, weekends, evenings (IST) and festival peaks; inverse-CDF sampling."""

    def __init__(self, config: SynthConfig, festival_boost: float):
        minutes = np.arange(config.days * 1440, dtype=np.int64)
        t = config.start_ms + minutes * MINUTE_MS
        ist_hour = ((t + IST_OFFSET_MS) // HOUR_MS) % 24
        hourly = np.array([0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 0.9, 1.0, 1.1, 1.2,
                           1.3, 1.3, 1.2, 1.1, 1.1, 1.2, 1.4, 1.6, 1.8, 1.9, 1.6, 0.9])  # fmt: skip
        weekday = ((t + IST_OFFSET_MS) // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 = Sat, Sun
        weight = hourly[ist_hour] * np.where(weekday >= 5, 1.15, 1.0) * (1.0 + 0.5 * minutes / len(minutes))
        weight = weight * np.where(_festival_mask(t), festival_boost, 1.0)
        self.start_ms = config.start_ms
        self.cdf = np.cumsum(weight)
        self.cdf /= self.cdf[-1]

    def sample(self, rng: np.random.Generator, not_before_ms: np.ndarray) -> np.ndarray:
        """One time per lower bound, drawn from the demand curve restricted to [bound, end)."""
        minute = np.clip((not_before_ms - self.start_ms) // MINUTE_MS, 0, len(self.cdf) - 1)
        low = np.where(minute > 0, self.cdf[np.maximum(minute - 1, 0)], 0.0)
        u = low + rng.random(len(not_before_ms)) * (1.0 - low)
        picked = np.minimum(np.searchsorted(self.cdf, u, side="left"), len(self.cdf) - 1)
        t = self.start_ms + picked * MINUTE_MS + rng.integers(0, MINUTE_MS, len(picked))
        return np.maximum(t, not_before_ms + 1)


# ---------------------------------------------------------------------------------------------- entities


def _regions_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": [r[0] for r in _REGIONS],
            "state_name": [r[1] for r in _REGIONS],
            "cod_available": [r[3] for r in _REGIONS],
            "population_tier": np.array([r[2] for r in _REGIONS], dtype="int64"),
        }
    )


def _make_addresses(rng: np.random.Generator, region_index: np.ndarray) -> list[str]:
    """ASCII delivery addresses in the given regions, e.g. '14 MG Road, Kothrud, Pune 411038'."""
    n = len(region_index)
    city_pick = rng.integers(0, 1 << 30, n)
    locality_pick = rng.integers(0, 1 << 30, n)
    street = rng.integers(0, len(_STREETS), n)
    building = rng.integers(0, len(_BUILDINGS), n)
    number = rng.integers(1, 400, n)
    pin_tail = rng.integers(1, 100, n)
    out = []
    for i in range(n):
        cities = _REGIONS[region_index[i]][4]
        city, pin, localities = cities[city_pick[i] % len(cities)]
        locality = localities[locality_pick[i] % len(localities)]
        out.append(
            f"{_BUILDINGS[building[i]]}{number[i]} {_STREETS[street[i]]}, {locality}, {city} {pin}{pin_tail[i]:03d}"
        )
    return out


def _fingerprints(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.array([f"{x:016x}" for x in rng.integers(0, np.iinfo(np.int64).max, n)], dtype=object)


def _identifiers(
    rng: np.random.Generator,
    segment: np.ndarray,
    customer: np.ndarray,
    run_head: np.ndarray,
    order_region: np.ndarray,
    housemate_of: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashed device, phone and network (IP prefix) of every order, as behaviours, not as labels.

    Everyone has a phone number and one or two devices; ordering from home shares the home network
    with the other homes on it, ordering over mobile data shares a carrier prefix with many strangers in
    the region, and housemates share the home network and sometimes a family device. Churn accounts
    are opened by a few operators: they reuse the operators' devices, burner phones and proxy networks.
    Shill buyers of colluding sellers are run the same way, less carefully. Multi-item checkouts carry
    the first item's identifiers. Callers do not always send them (null).
    """
    n_customers, n_orders = len(segment), len(customer)
    device_pool = _fingerprints(rng, 2 * n_customers)
    customer_phone = _fingerprints(rng, n_customers)
    home_network = _fingerprints(rng, max(1, n_customers // 3))[
        rng.integers(0, max(1, n_customers // 3), n_customers)
    ]
    carrier = _fingerprints(rng, 4 * len(_REGIONS))  # four carriers' NAT prefixes per region
    customer_device = device_pool[2 * np.arange(n_customers)]
    sharing = np.flatnonzero(housemate_of >= 0)
    home_network[sharing] = home_network[housemate_of[sharing]]
    family_device = sharing[rng.random(len(sharing)) < 0.3]
    customer_device[family_device] = customer_device[housemate_of[family_device]]
    for name, device_share, phone_share, proxy_share in (
        ("account_churn", 0.7, 0.5, 0.6),
        ("colluder", 0.4, 0.2, 0.4),
    ):
        members = np.flatnonzero(segment == _S[name])
        if not len(members):
            continue
        operators = max(2, len(members) // 6)
        devices, phones, proxies = (_fingerprints(rng, operators) for _ in range(3))
        for values, pool, share in ((customer_device, devices, device_share), (customer_phone, phones, phone_share),
                                    (home_network, proxies, proxy_share)):  # fmt: skip
            reused = members[rng.random(len(members)) < share]
            values[reused] = pool[rng.integers(0, operators, len(reused))]
    second_device = (rng.random(n_orders) < 0.25) & (segment[customer] != _S["account_churn"])
    device = np.where(second_device, device_pool[2 * customer + 1], customer_device[customer])
    mobile = rng.random(n_orders) < 0.3
    network = np.where(
        mobile, carrier[4 * order_region + rng.integers(0, 4, n_orders)], home_network[customer]
    )
    phone = customer_phone[customer]
    device, network, phone = device[run_head], network[run_head], phone[run_head]
    sent = rng.random((3, n_orders)) < np.array([[0.9], [0.7], [0.9]])
    return (
        np.where(sent[0], device, None),
        np.where(sent[1], phone, None),
        np.where(sent[2], network, None),
    )


# ---------------------------------------------------------------------------------------------- generate


def generate(config: SynthConfig) -> SyntheticData:
    """The whole synthetic history for one config; deterministic in (orders, seed, start, days)."""
    if config.orders < 100:
        raise ValueError("orders must be at least 100")
    if config.days < 30:
        raise ValueError("days must be at least 30")
    start, end, span = config.start_ms, config.end_ms, config.days * DAY_MS
    year_two = start + 365 * DAY_MS  # empty-box claims only appear in the second year
    ring_start = start + int(0.55 * span)  # the seller ring starts a little after half-way
    regions = _regions_frame()
    region_cod = regions["cod_available"].to_numpy()

    # Sellers and products. A few mid-sized sellers form the collusion ring.
    rng = _rng(config, 1)
    n_sellers, n_products = config.sellers, config.products
    seller_size = rng.pareto(1.2, n_sellers) + 1.0
    seller_region = _choice(rng, _REGION_POPULATION, n_sellers)
    seller_names = [
        f"{_SELLER_WORDS[0][a]} {_SELLER_WORDS[1][b]}"
        for a, b in zip(rng.integers(0, 15, n_sellers), rng.integers(0, 10, n_sellers), strict=True)
    ]
    by_size = np.argsort(seller_size, kind="stable")
    n_ring = int(np.clip(round(0.03 * n_sellers), 2, 15))
    mid = by_size[n_sellers // 4 : 3 * n_sellers // 4]
    ring_sellers = np.sort(rng.choice(mid if len(mid) >= n_ring else by_size, n_ring, replace=False))
    is_ring_seller = np.zeros(n_sellers, dtype=bool)
    is_ring_seller[ring_sellers] = True

    product_category = _choice(rng, _CATEGORY_SHARE, n_products)
    product_category[: len(CATEGORIES)] = np.arange(len(CATEGORIES))  # every category has a product
    product_seller = _choice(rng, seller_size, n_products)
    product_seller[: len(ring_sellers)] = ring_sellers  # every ring seller has something to sell
    product_price = (
        np.round(_CATEGORY_PRICE[product_category] * rng.lognormal(0.0, 0.55, n_products), 0) - 0.01
    )
    product_price = np.maximum(product_price, 49.0)
    product_popularity = rng.pareto(1.1, n_products) + 1.0
    brand_pick = rng.integers(0, 1 << 30, n_products)
    product_brand = [
        _BRANDS[CATEGORIES[c]][b % len(_BRANDS[CATEGORIES[c]])]
        for c, b in zip(product_category, brand_pick, strict=True)
    ]
    # Legitimate return propensity differs per product (sizing charts, fragile packaging).
    product_return_factor = rng.lognormal(0.0, 0.45, n_products)

    # Customers: hidden segment, registration, home region, payment habit, addresses, cards.
    rng = _rng(config, 2)
    n_customers = config.customers
    reg_u = rng.random(n_customers)
    # A third are existing customers migrating in the first weeks; the rest join over the range, more later.
    registered = np.where(
        rng.random(n_customers) < 0.35,
        start + (reg_u * 21 * DAY_MS).astype(np.int64),
        start + (np.sqrt(reg_u) * 0.97 * span).astype(np.int64),
    )
    registered = np.minimum(registered + rng.integers(0, MINUTE_MS, n_customers), end - 2 * DAY_MS)
    reg_frac = (registered - start) / span
    # Drift: accounts opened later are more often abusive.
    share = np.tile(_SEGMENT_SHARE, (n_customers, 1)) * (0.6 + 0.9 * reg_frac)[:, None]
    share[:, _S["heavy_returner"]] = _SEGMENT_SHARE[_S["heavy_returner"]]
    share[:, _S["colluder"]] *= np.where(registered < ring_start, 0.6, 2.0)
    share[:, _S["honest"]] = 1.0 - share[:, 1:].sum(axis=1)
    segment = _row_choice(rng, share)
    churn = segment == _S["account_churn"]
    home_region = _choice(rng, _REGION_POPULATION, n_customers)
    pay_share = np.tile(_PAYMENT_SHARE, (n_customers, 1))
    pay_share[segment == _S["cod_refuser"]] = [0.02, 0.05, 0.01, 0.02, 0.90]
    pay_share[~region_cod[home_region], 4] = 0.0
    preferred_payment = _row_choice(rng, pay_share)

    # Orders per customer: heavy-tailed activity, abusers busier, scaled by the time they have left.
    rng = _rng(config, 3)
    churn_counts = np.where(churn, rng.integers(3, 9, n_customers), 0)
    churn_counts = np.where(np.cumsum(churn_counts) <= config.orders // 10, churn_counts, 0)
    activity = rng.lognormal(0.0, 0.9, n_customers) * _SEGMENT_ACTIVITY[segment] * (end - registered) / span
    activity[churn] = 0.0
    regular_orders = max(config.orders - int(churn_counts.sum()), 0)
    counts = rng.multinomial(regular_orders, activity / activity.sum()) + churn_counts
    n_orders = int(counts.sum())
    customer = np.repeat(np.arange(n_customers), counts)
    order_segment = segment[customer]

    # Order times: the demand curve, after registration. Wardrobers shop for occasions of their own (a
    # wedding, a trip, a party): six dates drawn from the same demand curve as everyone's orders, and
    # 65% of their orders fall 1-10 days before one. A festival is as likely as any busy week to be one.
    timeline = _Timeline(config, festival_boost=2.2)
    times = timeline.sample(rng, registered[customer])
    occasion_driven = np.zeros(n_orders, dtype=bool)
    wardrober_orders = np.flatnonzero(order_segment == _S["wardrober"])
    if len(wardrober_orders):
        occasions = timeline.sample(rng, np.repeat(registered + 2 * DAY_MS, OCCASIONS)).reshape(-1, OCCASIONS)
        owner = customer[wardrober_orders]
        picked = occasions[owner, rng.integers(0, OCCASIONS, len(wardrober_orders))]
        before = picked - (rng.uniform(1, 10, len(wardrober_orders)) * DAY_MS).astype(np.int64)
        driven = (rng.random(len(wardrober_orders)) < 0.65) & (before > registered[owner])
        times[wardrober_orders[driven]] = before[driven]
        occasion_driven[wardrober_orders[driven]] = True
    # Churn accounts: a burst within hours of opening, several orders a minute apart.
    churn_orders = np.flatnonzero(order_segment == _S["account_churn"])
    if len(churn_orders):
        first = np.r_[True, customer[churn_orders][1:] != customer[churn_orders][:-1]]
        gaps = np.where(
            first,
            rng.exponential(2 * HOUR_MS, len(churn_orders)),
            np.where(rng.random(len(churn_orders)) < 0.6, rng.uniform(4_000, 55_000, len(churn_orders)),
                     rng.exponential(20 * MINUTE_MS, len(churn_orders))),
        ).astype(np.int64)  # fmt: skip
        run = np.cumsum(gaps)
        run_start = np.maximum.accumulate(np.where(first, np.arange(len(churn_orders)), 0))
        offset = run - run[run_start] + gaps[run_start]
        times[churn_orders] = registered[customer[churn_orders]] + offset
    times = np.minimum(times, end - MINUTE_MS)  # a burst opened late must still end inside the range

    order_sort = np.lexsort((times, customer))
    customer, times, order_segment = customer[order_sort], times[order_sort], order_segment[order_sort]
    occasion_driven = occasion_driven[order_sort]
    first_of_customer = np.r_[True, customer[1:] != customer[:-1]]
    group_start = np.maximum.accumulate(np.where(first_of_customer, np.arange(n_orders), 0))
    order_index = np.arange(n_orders) - group_start  # 0 = the customer's first order

    # Multi-item checkouts: an honest order placed seconds after the previous one, same address and payment.
    previous = np.r_[times[:1], times[:-1]]
    sibling = (~first_of_customer) & (order_segment != _S["account_churn"]) & (rng.random(n_orders) < 0.07)
    sibling &= previous < end - 2 * MINUTE_MS
    times = np.where(sibling, previous + rng.integers(3_000, 50_000, n_orders), times)
    # order_time is unique and increasing per customer (ms): a running maximum of (time - position) + position
    # is strictly increasing, and the customer number times the span keeps customers apart.
    key = customer * (span + 1) + (times - start) - np.arange(n_orders)
    times = np.maximum.accumulate(key) + np.arange(n_orders) - customer * (span + 1) + start
    run_id = np.cumsum(~sibling) - 1
    run_head = np.flatnonzero(~sibling)[run_id]

    # Category and product: each segment has its favourite categories; colluders buy from the ring.
    rng = _rng(config, 4)
    tilt = np.ones((len(SEGMENTS), len(CATEGORIES)))
    tilt[_S["wardrober"], :2] = 5.0
    tilt[_S["damage_claimer"], 2:4] = 5.0
    tilt[_S["serial_returner"], [0, 2]] = 1.6
    tilt[_S["account_churn"], 2:4] = 4.0
    tilt[_S["heavy_returner"], :2] = 2.5
    category_weights = tilt * _CATEGORY_SHARE
    order_category = np.empty(n_orders, dtype=np.int64)
    u = rng.random(n_orders)
    for s in range(len(SEGMENTS)):
        rows = order_segment == s
        cdf = np.cumsum(category_weights[s] / category_weights[s].sum())
        order_category[rows] = np.minimum(np.searchsorted(cdf, u[rows], side="right"), len(CATEGORIES) - 1)
    order_product = np.empty(n_orders, dtype=np.int64)
    u = rng.random(n_orders)
    for c in range(len(CATEGORIES)):
        rows = order_category == c
        in_category = np.flatnonzero(product_category == c)
        cdf = np.cumsum(product_popularity[in_category])
        cdf /= cdf[-1]
        order_product[rows] = in_category[np.minimum(np.searchsorted(cdf, u[rows]), len(in_category) - 1)]
    ring_products = np.flatnonzero(is_ring_seller[product_seller])
    to_ring = (order_segment == _S["colluder"]) & (times >= ring_start) & (rng.random(n_orders) < 0.8)
    order_product[to_ring] = ring_products[rng.integers(0, len(ring_products), int(to_ring.sum()))]
    # Size bracketing (honest): half the time an honest customer's second fashion or footwear item in
    # one checkout is the same product in another size; one of the two usually goes back (size_fit).
    previous_product = np.r_[order_product[:1], order_product[:-1]]
    bracket = (
        sibling
        & (order_segment <= _S["heavy_returner"])
        & (product_category[previous_product] <= 1)
        & (_rng(config, 10).random(n_orders) < 0.5)
    )
    order_product = np.where(bracket, previous_product, order_product)
    order_category = product_category[order_product]
    order_seller = product_seller[order_product]

    # Amount: the price, discounted during sales.
    festival = _festival_mask(times)
    discount = np.where(festival, rng.uniform(0.05, 0.35, n_orders),
                        np.where(rng.random(n_orders) < 0.3, rng.uniform(0.0, 0.15, n_orders), 0.0))  # fmt: skip
    amount = np.maximum(np.round(product_price[order_product] * (1.0 - discount), 2), 1.0)

    # Addresses: a few per customer (home most of the time); churn accounts use a new one every order.
    rng = _rng(config, 5)
    n_addresses = np.where(churn, 0, 1 + rng.binomial(3, np.where(segment == _S["cod_refuser"], 0.3, 0.18)))
    address_owner = np.repeat(np.arange(n_customers), n_addresses)
    address_first = np.r_[0, np.cumsum(n_addresses)[:-1]]
    away = rng.random(len(address_owner)) < 0.15  # relatives, office, another city
    address_region = np.where(
        away, _choice(rng, _REGION_POPULATION, len(address_owner)), home_region[address_owner]
    )
    address_text = _make_addresses(rng, address_region)
    # Shared homes (their own stream, so every other draw stays as it was): 8% of honest customers
    # live with another customer (family, flatmates) and have their orders delivered to the same home.
    link_rng = _rng(config, 8)
    home = address_first[n_addresses > 0]
    housemates = np.flatnonzero(
        (n_addresses > 0) & (segment <= _S["heavy_returner"]) & (link_rng.random(n_customers) < 0.08)
    )
    housemate_of = np.full(n_customers, -1, dtype=np.int64)  # whose home a customer shares
    if len(home) > 1 and len(housemates):
        moved_in = home[link_rng.integers(0, len(home), len(housemates))]
        housemate_of[housemates] = address_owner[moved_in]
        for own, shared in zip(address_first[housemates], moved_in, strict=True):
            address_text[own] = address_text[shared]
        address_region[address_first[housemates]] = address_region[moved_in]
    # Gift-senders, movers and COD refusers use a non-home address more often; other abusers do not.
    non_home = np.where(order_segment == _S["cod_refuser"], 0.25, 0.12) + np.where(
        rng.random(n_orders) < 0.03, 0.5, 0.0
    )
    pick = np.where(rng.random(n_orders) < non_home, rng.integers(0, 1 << 30, n_orders), 0)
    order_address = np.full(n_orders, -1, dtype=np.int64)
    regular = order_segment != _S["account_churn"]
    order_address[regular] = (address_first[customer] + pick % np.maximum(n_addresses[customer], 1))[regular]
    order_address = order_address[run_head]
    churn_rows = np.flatnonzero(~regular)
    churn_region = np.where(
        rng.random(len(churn_rows)) < 0.5,
        home_region[customer[churn_rows]],
        _choice(rng, _REGION_POPULATION, len(churn_rows)),
    )
    churn_text = _make_addresses(rng, churn_region)
    # Churn rings share a few drop addresses: 40% of their orders go to one of them.
    drops = max(3, int(churn.sum()) // 4)
    drop_region = _choice(link_rng, _REGION_POPULATION, drops)
    drop_text = _make_addresses(link_rng, drop_region)
    to_drop = np.flatnonzero(link_rng.random(len(churn_rows)) < 0.4)
    picked_drop = link_rng.integers(0, drops, len(to_drop))
    for i, d in zip(to_drop, picked_drop, strict=True):
        churn_text[i] = drop_text[d]
    churn_region[to_drop] = drop_region[picked_drop]
    all_address_text = np.array(address_text + churn_text, dtype=object)
    all_address_region = np.r_[address_region, churn_region]
    order_address[churn_rows] = len(address_text) + np.arange(len(churn_rows))
    delivery_address = all_address_text[order_address]
    delivery_region = all_address_region[order_address]

    # Payment: the customer's habit most of the time; no COD where it isn't offered.
    habit = rng.random(n_orders) < 0.7
    payment = np.where(habit, preferred_payment[customer], _choice(rng, _PAYMENT_SHARE, n_orders))
    churn_payment = np.where(rng.random(n_orders) < 0.55, 4, 0)
    payment = np.where(order_segment == _S["account_churn"], churn_payment, payment)
    payment = payment[run_head]
    payment = np.where((payment == 4) & ~region_cod[delivery_region], 1, payment)
    # Cards: one or two per customer; churn accounts cycle through a small pool shared by the ring.
    card_pool = _fingerprints(rng, n_customers * 2)
    second_card = rng.random(n_orders) < 0.2
    card = card_pool[customer * 2 + second_card.astype(np.int64)]
    shared = _fingerprints(rng, max(3, int(churn.sum()) // 4))
    card[churn_rows] = np.where(
        rng.random(len(churn_rows)) < 0.4,
        shared[rng.integers(0, len(shared), len(churn_rows))],
        _fingerprints(rng, len(churn_rows)),
    )
    card_fingerprint = np.where(payment == 0, card, None)
    device_id, phone_hash, ip_prefix = _identifiers(
        _rng(config, 9), segment, customer, run_head, home_region[customer], housemate_of
    )

    # Outcomes. Abuse first (segment, category, payment, festival, drift), then legitimate returns.
    rng = _rng(config, 6)
    frac = (times - start) / span
    drift = 0.75 + 0.5 * frac
    warmup = rng.poisson(1.5, n_customers) + 1  # abusers' first orders look normal
    # 40% of abusers start as honest customers and turn at a random point of their time on the site.
    turn_rng = _rng(config, 11)
    turns = (
        (segment >= _S["serial_returner"])
        & (segment != _S["account_churn"])
        & (turn_rng.random(n_customers) < 0.4)
    )
    turn_at = np.where(
        turns, registered + (turn_rng.random(n_customers) * (end - registered)).astype(np.int64), start
    )
    active = (order_index >= warmup[customer]) & (times >= turn_at[customer])
    fashion = order_category <= 1
    gadget = (order_category == 2) | (order_category == 3)
    cod = payment == 4
    p_abuse = np.zeros(n_orders)
    abuse_kind = np.zeros(n_orders, dtype=np.int64)

    def plant(rows: np.ndarray, probability: np.ndarray | float, kind: str) -> None:
        p_abuse[rows] = np.broadcast_to(probability, p_abuse.shape)[rows]
        abuse_kind[rows] = _A[kind]

    plant((order_segment == _S["serial_returner"]) & active, 0.6, "serial_returner")
    plant((order_segment == _S["wardrober"]) & active & fashion, np.where(occasion_driven, 0.75, 0.1),
          "wardrobing")  # fmt: skip
    plant((order_segment == _S["cod_refuser"]) & active & cod, 0.65, "cod_refusal")
    plant((order_segment == _S["damage_claimer"]) & active, np.where(gadget, 0.7, 0.12), "damage_claim")
    plant(order_segment == _S["account_churn"], np.where(order_index == 0, 0.35, 0.7), "account_churn")
    plant((order_segment == _S["colluder"]) & is_ring_seller[order_seller] & (times >= ring_start), 0.75,
          "seller_collusion")  # fmt: skip
    # Opportunists: honest customers who abuse once in a long while (unpredictable on purpose).
    honest = order_segment <= _S["heavy_returner"]
    plant(honest & gadget, 0.004, "damage_claim")
    plant(honest & fashion, 0.003, "wardrobing")
    plant(honest & cod, 0.004, "cod_refusal")
    abusive = rng.random(n_orders) < np.clip(p_abuse * drift, 0.0, 0.95)
    abuse_kind = np.where(abusive, abuse_kind, 0)

    # Legitimate returns: category base rate x product x customer habit; heavy returners return a lot.
    habit_factor = rng.lognormal(-0.1, 0.5, n_customers) * np.where(segment == _S["heavy_returner"], 3.2, 1.0)
    p_legit = _CATEGORY_RETURN[order_category] * product_return_factor[order_product] * habit_factor[customer]
    p_legit = np.clip(p_legit, 0.0, 0.75)
    p_legit = np.where(bracket, 0.85, p_legit)
    legit = ~abusive & (rng.random(n_orders) < p_legit)
    honest_refusal = ~abusive & ~legit & cod & (rng.random(n_orders) < 0.035)
    returned = abusive | legit | honest_refusal

    # Reason codes.
    reason = np.full(n_orders, -1, dtype=np.int64)
    legit_rows = np.flatnonzero(legit)
    w = np.zeros((len(legit_rows), len(REASON_CODES)))
    cat = order_category[legit_rows]
    # fmt: off
    w[:] = [0.15, 0.10, 0, 0.20, 0, 0.15, 0.15, 0.15, 0.10, 0]
    w[cat <= 1] = [0.02, 0.02, 0, 0.08, 0.55, 0.08, 0.10, 0.10, 0.05, 0]
    w[(cat == 2) | (cat == 3)] = [0.15, 0.35, 0, 0.13, 0, 0.15, 0.02, 0.10, 0.10, 0]
    # fmt: on
    reason[legit_rows] = _row_choice(rng, w)
    reason[legit & bracket] = _R["size_fit"]
    reason[honest_refusal] = _R["refused_delivery"]
    abuse_rows = np.flatnonzero(abusive)
    kind = abuse_kind[abuse_rows]
    w = np.zeros((len(abuse_rows), len(REASON_CODES)))
    second_year = times[abuse_rows] >= year_two
    empty = np.where(second_year, 1.0, 0.0)
    # fmt: off
    w[kind == _A["serial_returner"]] = [0.22, 0.18, 0, 0.12, 0.05, 0.28, 0.15, 0, 0, 0]
    w[kind == _A["wardrobing"]] = [0, 0, 0, 0, 0.40, 0.20, 0.20, 0.20, 0, 0]
    w[kind == _A["cod_refusal"]] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1.0]
    w[kind == _A["damage_claim"]] = [0.50, 0.30, 0, 0.10, 0, 0.10, 0, 0, 0, 0]
    w[kind == _A["seller_collusion"]] = [0.25, 0, 0, 0.35, 0, 0.40, 0, 0, 0, 0]
    # fmt: on
    w[kind == _A["damage_claim"], _R["empty_box"]] = 0.45 * empty[kind == _A["damage_claim"]]
    w[kind == _A["seller_collusion"], _R["empty_box"]] = 0.4 * empty[kind == _A["seller_collusion"]]
    churn_kind = kind == _A["account_churn"]
    churn_cod = cod[abuse_rows] & churn_kind
    w[churn_kind] = [0.45, 0.10, 0, 0.15, 0, 0.30, 0, 0, 0, 0]
    w[churn_kind, _R["empty_box"]] = 0.6 * empty[churn_kind]
    w[churn_cod] = 0.0
    w[churn_cod, _R["refused_delivery"]] = 1.0
    reason[abuse_rows] = _row_choice(rng, w)
    abuse_kind[abuse_rows] = np.where(
        (reason[abuse_rows] == _R["empty_box"]) & (kind == _A["damage_claim"]), _A["empty_box"], kind
    )

    # Return timing (delivery takes days; wardrobers keep the item just long enough to wear it).
    ret_rows = np.flatnonzero(returned)
    ret_reason = reason[ret_rows]
    ret_kind = abuse_kind[ret_rows]
    n_ret = len(ret_rows)
    delay = DAY_MS + rng.gamma(2.0, 3.0, n_ret) * DAY_MS
    delay = np.where(ret_reason == _R["late_delivery"], rng.uniform(7, 16, n_ret) * DAY_MS, delay)
    delay = np.where(ret_reason == _R["refused_delivery"], rng.uniform(2, 6, n_ret) * DAY_MS, delay)
    delay = np.where(ret_kind == _A["wardrobing"], rng.uniform(3, 8, n_ret) * DAY_MS, delay)
    damage_like = np.isin(
        ret_kind, [_A["damage_claim"], _A["empty_box"], _A["account_churn"], _A["serial_returner"]]
    )
    delay = np.where(
        damage_like & (ret_reason != _R["refused_delivery"]), rng.uniform(2, 7, n_ret) * DAY_MS, delay
    )
    return_time = times[ret_rows] + delay.astype(np.int64) + rng.integers(0, MINUTE_MS, n_ret)
    # Returns that would happen after the data window are not known yet (like a real extract).
    kept = return_time < end - HOUR_MS
    ret_rows, ret_reason, ret_kind, return_time = (
        ret_rows[kept],
        ret_reason[kept],
        ret_kind[kept],
        return_time[kept],
    )
    n_ret = len(ret_rows)
    rto = ret_reason == _R["refused_delivery"]
    is_abuse = ret_kind > 0
    status = np.where(is_abuse, _choice(rng, np.array([0, 0.1, 0.18, 0.72]), n_ret),
                      _choice(rng, np.array([0, 0.08, 0.07, 0.85]), n_ret))  # fmt: skip
    status = np.where(rto, 1, status)
    status = np.where((return_time > end - 3 * DAY_MS) & (rng.random(n_ret) < 0.7), 0, status)
    ret_amount = amount[ret_rows]
    partial = (ret_reason == _R["quality"]) & (rng.random(n_ret) < 0.15)
    refund = np.where(partial, np.round(ret_amount * rng.uniform(0.4, 0.8, n_ret), 2), ret_amount)
    refund = np.where(np.isin(status, [1, 3]) & ~rto, refund, 0.0)
    method = np.where(rto, 2, np.where(rng.random(n_ret) < 0.78, 0, 1))
    comment_pick = rng.integers(0, 1 << 30, n_ret)
    blank = rng.random(n_ret) < 0.15
    comments = [
        "" if blank[i] else _COMMENTS[REASON_CODES[r]][comment_pick[i] % len(_COMMENTS[REASON_CODES[r]])]
        for i, r in enumerate(ret_reason)
    ]
    # Wardrobers sometimes give themselves away; honest customers sometimes say the same.
    worn = ((ret_kind == _A["wardrobing"]) & (rng.random(n_ret) < 0.25)) | (
        (ret_reason == _R["size_fit"]) & (rng.random(n_ret) < 0.02)
    )
    for i in np.flatnonzero(worn):
        comments[i] = "Wore it once for the function, " + (comments[i].lower() or "not needed now")
    # Inspection takes 1-21 days after the return; a label that would come after the extract's end is
    # not known yet (no label row), exactly like a return after the end.
    labeled_at = return_time + (rng.uniform(1, 21, n_ret) * DAY_MS).astype(np.int64)
    labeled = labeled_at < end
    # Label noise: inspection misses 4% of abuse (the parcel looked fine); the label says "none".
    missed = is_abuse & (_rng(config, 12).random(n_ret) < 0.04)
    is_abuse = is_abuse & ~missed
    ret_kind = np.where(missed, 0, ret_kind)

    # Order ids follow time; return ids follow return time.
    chrono = np.lexsort((customer, times))
    order_number = np.empty(n_orders, dtype=np.int64)
    order_number[chrono] = np.arange(n_orders)
    order_ids = np.array(_ids("O", 8, n_orders), dtype=object)
    customer_ids = np.array(_ids("C", 7, n_customers), dtype=object)
    product_ids = np.array(_ids("P", 6, n_products), dtype=object)
    seller_ids = np.array(_ids("S", 5, n_sellers), dtype=object)
    region_codes = regions["region"].to_numpy(dtype=object)

    orders = pd.DataFrame(
        {
            "order_id": order_ids[order_number[chrono]],
            "customer_id": customer_ids[customer[chrono]],
            "product_id": product_ids[order_product[chrono]],
            "seller_id": seller_ids[order_seller[chrono]],
            "order_time": _utc(times[chrono]),
            "amount": amount[chrono],
            "currency": "INR",
            "payment_method": np.array(PAYMENT_METHODS, dtype=object)[payment[chrono]],
            "delivery_address": delivery_address[chrono],
            "delivery_region": region_codes[delivery_region[chrono]],
            "card_fingerprint": card_fingerprint[chrono],
            "device_id": device_id[chrono],
            "phone_hash": phone_hash[chrono],
            "ip_prefix": ip_prefix[chrono],
        }
    )
    by_return = np.argsort(return_time, kind="stable")
    return_order_ids = order_ids[order_number[ret_rows]]
    returns = pd.DataFrame(
        {
            "return_id": np.array(_ids("R", 8, n_ret), dtype=object),
            "order_id": return_order_ids[by_return],
            "return_time": _utc(return_time[by_return]),
            "reason_code": np.array(REASON_CODES, dtype=object)[ret_reason[by_return]],
            "reason": np.array(comments, dtype=object)[by_return] if n_ret else np.array([], dtype=object),
            "status": np.array(RETURN_STATUSES, dtype=object)[status[by_return]],
            "refund_amount": refund[by_return].astype(np.float64),
            "return_method": np.array(RETURN_METHODS, dtype=object)[method[by_return]],
        }
    )
    by_label = np.flatnonzero(labeled)[np.lexsort((return_order_ids[labeled], labeled_at[labeled]))]
    labels = pd.DataFrame(
        {
            "order_id": return_order_ids[by_label],
            "is_abuse": is_abuse[by_label].astype(np.int64),
            "abuse_type": np.array(ABUSE_TYPES, dtype=object)[ret_kind[by_label]],
            "labeled_at": _utc(labeled_at[by_label]),
        }
    )

    first_order = np.full(n_sellers, end, dtype=np.int64)
    np.minimum.at(first_order, order_seller, times)
    rng = _rng(config, 7)
    onboarded = start + (rng.random(n_sellers) * (first_order - start)).astype(np.int64)
    customers = pd.DataFrame(
        {
            "customer_id": customer_ids,
            "registered_at": _utc(registered),
            "home_region": region_codes[home_region],
            "preferred_payment": np.array(PAYMENT_METHODS, dtype=object)[preferred_payment],
        }
    )
    sellers = pd.DataFrame(
        {
            "seller_id": seller_ids,
            "seller_name": np.array(seller_names, dtype=object),
            "region": region_codes[seller_region],
            "onboarded_at": _utc(onboarded),
        }
    )
    products = pd.DataFrame(
        {
            "product_id": product_ids,
            "category": np.array(CATEGORIES, dtype=object)[product_category],
            "brand": np.array(product_brand, dtype=object),
            "price": product_price.astype(np.float64),
            "seller_id": seller_ids[product_seller],
        }
    )
    return SyntheticData(customers, sellers, products, orders, returns, labels, regions, config)


# ---------------------------------------------------------------------------------------------- lake


RAW_TABLES = ("customers", "sellers", "products", "orders", "returns", "labels")
_EVENT_TIME = {"orders": "order_time", "returns": "return_time", "labels": "labeled_at"}


def festivals_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": [w.name for w in WINDOWS],
            "kind": [w.kind for w in WINDOWS],
            "first_day": [w.first_day.isoformat() for w in WINDOWS],
            "last_day": [w.last_day.isoformat() for w in WINDOWS],
            "start_ms": [w.start_ms for w in WINDOWS],
            "end_ms": [w.end_ms for w in WINDOWS],
        }
    )


def _partitions(frame: pd.DataFrame, table: str, snapshot_day: str) -> list[tuple[str, np.ndarray]]:
    """(dt, row positions) per partition: events by their UTC date, entity tables as one snapshot."""
    if table not in _EVENT_TIME:
        return [(snapshot_day, np.arange(len(frame)))]
    day_number = _ms(frame[_EVENT_TIME[table]]) // DAY_MS
    order = np.argsort(day_number, kind="stable")
    days_sorted = day_number[order]
    bounds = np.flatnonzero(np.r_[True, days_sorted[1:] != days_sorted[:-1], True])
    epoch = date(1970, 1, 1)
    return [
        ((epoch + timedelta(days=int(days_sorted[a]))).isoformat(), order[a:b])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def write_raw(data: SyntheticData, root: Path) -> dict[str, int]:
    """Write the raw tables as Parquet under `root/raw/<table>/dt=YYYY-MM-DD/part-0000.parquet`, plus external CSVs.

    Everything is written into a staging folder next to the target first and moved into place only once
    complete, so a failure leaves the previous lake (or nothing) rather than half a table.
    Returns rows written per table.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    snapshot_day = (data.config.start + timedelta(days=data.config.days - 1)).isoformat()
    staging = Path(tempfile.mkdtemp(prefix=".synth-staging-", dir=root))
    written: dict[str, int] = {}
    try:
        for table in RAW_TABLES:
            frame: pd.DataFrame = getattr(data, table)
            arrow = pa.Table.from_pandas(frame, preserve_index=False)
            for day, rows in _partitions(frame, table, snapshot_day):
                folder = staging / "raw" / table / f"dt={day}"
                folder.mkdir(parents=True, exist_ok=True)
                pq.write_table(arrow.take(pa.array(rows)), folder / "part-0000.parquet")
            written[table] = len(frame)
        (staging / "external" / "festivals").mkdir(parents=True)
        festivals = festivals_frame()
        festivals.to_csv(staging / "external" / "festivals" / "festivals.csv", index=False)
        written["festivals"] = len(festivals)
        (staging / "external" / "regional").mkdir(parents=True)
        data.regions.to_csv(staging / "external" / "regional" / "regions.csv", index=False)
        written["regions"] = len(data.regions)

        # Swap each finished folder in: the old copy is moved aside first, then removed.
        moves = [("raw", t) for t in RAW_TABLES] + [("external", "festivals"), ("external", "regional")]
        for parent, name in moves:
            target = root / parent / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                os.replace(target, staging / f"old-{parent}-{name}")
            os.replace(staging / parent / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


# ---------------------------------------------------------------------------------------------- replay helpers


def to_contexts(data: SyntheticData) -> tuple[dict[str, int], list[OrderContext], list[ReturnContext]]:
    """Profiles (customer -> registered_at ms), orders and returns as `returnguard.aggregates.replay` takes them."""
    customers = data.customers
    profiles = dict(
        zip(customers["customer_id"].tolist(), _ms(customers["registered_at"]).tolist(), strict=True)
    )
    category = dict(
        zip(data.products["product_id"].tolist(), data.products["category"].tolist(), strict=True)
    )
    o = data.orders
    orders = [
        OrderContext(
            order_id=oid,
            customer_id=cid,
            product_id=pid,
            seller_id=sid,
            category=category[pid],
            region=region,
            order_time_ms=t,
            amount_minor=amount_to_minor(amount),
            payment_method=payment,
            delivery_address=address,
            card_fingerprint=card or None,
            device_id=device or None,
            phone_hash=phone or None,
            ip_prefix=network or None,
        )
        for oid, cid, pid, sid, region, t, amount, payment, address, card, device, phone, network in zip(
            o["order_id"].tolist(),
            o["customer_id"].tolist(),
            o["product_id"].tolist(),
            o["seller_id"].tolist(),
            o["delivery_region"].tolist(),
            _ms(o["order_time"]).tolist(),
            o["amount"].tolist(),
            o["payment_method"].tolist(),
            o["delivery_address"].tolist(),
            o["card_fingerprint"].tolist(),
            o["device_id"].tolist(),
            o["phone_hash"].tolist(),
            o["ip_prefix"].tolist(),
            strict=True,
        )
    ]
    by_order = {ctx.order_id: ctx for ctx in orders}
    r = data.returns
    returns = []
    for rid, oid, t, code in zip(
        r["return_id"].tolist(),
        r["order_id"].tolist(),
        _ms(r["return_time"]).tolist(),
        r["reason_code"].tolist(),
        strict=True,
    ):
        ctx = by_order[oid]
        returns.append(
            ReturnContext(
                return_id=rid,
                order_id=oid,
                customer_id=ctx.customer_id,
                product_id=ctx.product_id,
                seller_id=ctx.seller_id,
                category=ctx.category,
                region=ctx.region,
                return_time_ms=t,
                reason_code=code,
                delivery_address=ctx.delivery_address,
                **{name: getattr(ctx, name) for name in LINK_IDENTIFIERS.values()},
            )
        )
    return profiles, orders, returns


def label_map(data: SyntheticData) -> dict[str, int]:
    """order_id -> 1 if the order ended in abuse; orders without a label row are 0."""
    labels = dict.fromkeys(data.orders["order_id"].tolist(), 0)
    labels.update(zip(data.labels["order_id"].tolist(), data.labels["is_abuse"].tolist(), strict=True))
    return labels


def label_facts(data: SyntheticData) -> pd.DataFrame:
    """Per order: label (0 without a label row), labeled_at_ms (None without one) and abuse_type,
    the columns the Glue job adds to the training table."""
    facts = pd.DataFrame({"order_id": data.orders["order_id"]})
    known = data.labels.set_index("order_id")
    facts["label"] = facts["order_id"].map(known["is_abuse"]).fillna(0).astype(np.int64)
    labeled_at = pd.Series(_ms(known["labeled_at"]), index=known.index)
    facts["labeled_at_ms"] = facts["order_id"].map(labeled_at).astype("Int64")
    facts["abuse_type"] = facts["order_id"].map(known["abuse_type"]).astype(object)
    return facts


def replay_table(data: SyntheticData) -> pd.DataFrame:
    """The training table by the pure-Python reference (no Spark): order_id, order_time_ms, features,
    label, labeled_at_ms, abuse_type.

    By contract the same rows the Glue job writes to processed/training-data (the parity tests prove it).
    """
    from returnguard.aggregates import replay

    _, walk = replay(*to_contexts(data))
    table = pd.DataFrame(
        [{"order_id": o.order_id, "order_time_ms": o.order_time_ms, **vector} for o, vector in walk]
    )
    return table.merge(label_facts(data), on="order_id", how="left")


def _ms(column: pd.Series) -> np.ndarray:
    return column.dt.tz_convert("UTC").to_numpy(dtype="datetime64[ms]").astype(np.int64)


def summary(data: SyntheticData) -> dict[str, object]:
    orders = len(data.orders)
    positives = int(data.labels["is_abuse"].sum())
    return {
        "rows": {t: len(getattr(data, t)) for t in RAW_TABLES},
        "positive_rate": positives / orders if orders else 0.0,
        "return_rate": len(data.returns) / orders if orders else 0.0,
        "abuse_types": data.labels.loc[data.labels["is_abuse"] == 1, "abuse_type"].value_counts().to_dict(),
        "first_order": str(data.orders["order_time"].min()),
        "last_order": str(data.orders["order_time"].max()),
    }


# ---------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=SynthConfig.orders)
    parser.add_argument("--seed", type=int, default=SynthConfig.seed)
    parser.add_argument("--start", type=date.fromisoformat, default=SynthConfig.start)
    parser.add_argument("--days", type=int, default=SynthConfig.days)
    parser.add_argument("--out", type=Path, default=Path("build/demo/lake"))
    args = parser.parse_args(argv)
    config = SynthConfig(orders=args.orders, seed=args.seed, start=args.start, days=args.days)

    began = time.perf_counter()
    print(
        f"generating {config.orders:,} orders (seed {config.seed}, {config.start} + {config.days} days)...",
        flush=True,
    )
    data = generate(config)
    generated = time.perf_counter()
    print(f"  generated in {generated - began:.1f} s; writing Parquet to {args.out}...", flush=True)
    written = write_raw(data, args.out)
    print(f"  written in {time.perf_counter() - generated:.1f} s", flush=True)
    info = summary(data)
    for table, rows in written.items():
        print(f"  {table:<10} {rows:>10,} rows")
    print(f"  positive rate {info['positive_rate']:.2%} of orders; return rate {info['return_rate']:.2%}")
    print(f"  abuse types   {info['abuse_types']}")
    print(f"  orders from   {info['first_order']} to {info['last_order']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
