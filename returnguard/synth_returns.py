"""Synthetic return requests and their inspection outcomes, from behaviours (the return lane's data).

Built on top of `returnguard.synth`'s marketplace: every return the order generator made (other than a
parcel refused at the door, which is no request) becomes a return request with the facts the customer's
returns system knows when they ask (delivery time, amount paid, refund asked, method, items, pickup
address, the customer's own words), and an inspection outcome known days later. What decides both is
the behaviour behind the return, read from the order generator's hidden ground truth (`labels`):

| behaviour | from | request | inspection |
|---|---|---|---|
| honest | returns without abuse | asks soon after delivery for damage, later for a change of mind; text usually describes the reason, now and then angry | item_fine (a few customer_damage: careless but honest) |
| size bracketing | honest fashion/footwear size returns | two sizes back within days, keeps one | item_fine |
| wardrober | wardrobing | size/quality a few days after a festival order | used_worn |
| empty-box fraud | empty_box, part of account churn | claims empty/damaged on day 0-1, pickup | empty_box |
| swap fraud | part of damage claims, seller collusion | defective/wrong item after 1-4 weeks, sometimes from another address | swapped_or_counterfeit |
| serial damage claimer | serial returners, the rest of damage claims | damaged/defective, often polite | customer_damage (some used_worn) |
| no-show | part of account churn and COD refusers | pickup asked, nothing handed over | never_shipped_back |

Text is English, Hindi (Devanagari) or Hinglish per customer; honest customers are sometimes angry and
abusers are often polite; rings share scripted texts word for word. Inspections are not perfect (2%
of outcomes are wrong either way), and come 2-20 days after the request: those after the range's end
are not in the data (immature labels).

numpy/pandas here, as in synth.py: this module is never on the scoring path.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from returnguard.calendar import DAY_MS
from returnguard.returns import INSPECTION_OUTCOMES, ReturnRequestContext, outcome_label
from returnguard.synth import SynthConfig, SyntheticData, generate, to_contexts, write_raw

HOUR_MS = 3_600_000
BEHAVIOURS = ("honest", "size_bracketing", "wardrober", "empty_box_fraud", "swap_fraud", "serial_damage",
              "no_show")  # fmt: skip
OUTCOME_NAMES = tuple(o.name for o in INSPECTION_OUTCOMES)
LANGUAGES = ("en", "hinglish", "hi")
LABEL_NOISE = 0.02

# ------------------------------------------------------------------------------------------ text banks
# (reason code) -> language -> phrases describing that reason.
_SAYS: dict[str, dict[str, tuple[str, ...]]] = {
    "damaged": {
        "en": (
            "The item arrived damaged",
            "Box was crushed and the product is broken",
            "Screen is cracked",
            "It came with a big dent",
            "The bottle leaked and the packet is torn",
        ),
        "hinglish": (
            "Product tuta hua aaya hai",
            "Packet phata hua tha aur item damaged hai",
            "Screen pe crack hai",
            "Saman toota hua mila",
        ),
        "hi": ("सामान टूटा हुआ आया है", "डिब्बा फटा था और सामान खराब है", "स्क्रीन टूटा हुआ है"),
    },
    "defective": {
        "en": (
            "It stopped working after two days",
            "The device does not switch on",
            "Not charging at all",
            "Faulty unit, keeps restarting",
        ),
        "hinglish": (
            "Ye kaam nahi kar raha",
            "Charge hi nahi ho raha",
            "Do din me band ho gaya",
            "On hi nahi hota, kharab piece hai",
        ),
        "hi": ("यह काम नहीं कर रहा है", "दो दिन में बंद हो गया", "चार्ज नहीं हो रहा, खराब है"),
    },
    "empty_box": {
        "en": ("The box was empty", "Nothing inside the package", "Item missing from the parcel"),
        "hinglish": ("Box khali tha", "Andar kuch nahi tha, item gayab", "Parcel me saman hi nahi tha"),
        "hi": ("डिब्बा खाली था", "पार्सल में सामान गायब था"),
    },
    "wrong_item": {
        "en": ("I received a different model", "Wrong colour sent", "This is not what I ordered, wrong item"),
        "hinglish": ("Galat item bhej diya", "Dusra colour aaya hai", "Maine ye model order nahi kiya tha"),
        "hi": ("गलत सामान भेजा गया", "दूसरा रंग आया है"),
    },
    "size_fit": {
        "en": (
            "Too small, need a bigger size",
            "Size is too big",
            "Does not fit, too tight",
            "Fitting is loose around the waist",
        ),
        "hinglish": (
            "Size chhota hai",
            "Bada size chahiye",
            "Fitting tight hai bhai",
            "Size bilkul sahi nahi hai",
        ),
        "hi": ("साइज छोटा है", "बड़ा साइज चाहिए", "फिटिंग टाइट है"),
    },
    "not_as_described": {
        "en": (
            "Looks nothing like the photo",
            "Not as described in the listing",
            "Colour differs from picture",
        ),
        "hinglish": ("Photo me kuch aur dikhaya tha", "Listing se alag hai", "Picture jaisa bilkul nahi hai"),
        "hi": ("फोटो से बिल्कुल अलग है", "तस्वीर जैसा नहीं है"),
    },
    "quality": {
        "en": ("Poor quality material", "Fabric is very thin and cheap", "Quality is not good"),
        "hinglish": ("Quality bekar hai", "Material ghatiya hai", "Kapda bahut patla hai"),
        "hi": ("क्वालिटी घटिया है", "कपड़ा बहुत पतला है"),
    },
    "changed_mind": {
        "en": ("I no longer need it", "Changed my mind", "Bought something else instead"),
        "hinglish": ("Ab zaroorat nahi hai", "Mann badal gaya", "Kuch aur le liya"),
        "hi": ("अब इसकी जरूरत नहीं है", "मन बदल गया"),
    },
    "late_delivery": {
        "en": ("Delivered a week late", "Came too late for the occasion", "Delivery was delayed by days"),
        "hinglish": ("Bahut late aaya", "Delivery me der ho gayi", "Function ke baad aaya"),
        "hi": ("बहुत देर से आया", "डिलीवरी में देर हुई"),
    },
}
_VAGUE = {
    "en": ("Not satisfied", "Don't like it", "Please take it back", "Not happy with the product"),
    "hinglish": ("Pasand nahi aaya", "Mujhe nahi chahiye", "Wapas le lo"),
    "hi": ("पसंद नहीं आया", "वापस ले लीजिए"),
}
_ANGRY = {
    "en": (
        "Worst service ever!",
        "Absolutely pathetic.",
        "I am furious, this is a scam!",
        "Disgusting experience.",
    ),
    "hinglish": ("Bakwas service hai!", "Ekdum pathetic yaar!", "Paisa barbaad!"),
    "hi": ("बकवास सर्विस है!", "पैसे बर्बाद!"),
}
_POLITE_OPEN = {
    "en": ("Dear team,", "Hello, I hope you are well.", "Respected sir/madam,"),
    "hinglish": ("Namaste team,", "Hello ji,"),
    "hi": ("नमस्ते,", "आदरणीय महोदय,"),
}
_POLITE_CLOSE = {
    "en": ("Kindly process the refund at the earliest. Thank you.", "Thanks for your help."),
    "hinglish": ("Kripya jaldi refund kar dijiye, dhanyavaad.", "Thank you ji."),
    "hi": ("कृपया जल्दी रिफंड करें, धन्यवाद।",),
}
# Scripts rings pass around: the same words from many customers.
_SCRIPTS = (
    "As per consumer protection guidelines I request an immediate full refund since the product received "
    "was not in acceptable condition and I have attached all details",
    "Dear team the product received is not acceptable kindly arrange pickup and refund the full amount to "
    "my original payment method within 48 hours",
    "Product ka quality and condition dono kharab hai kripya turant pickup arrange karke pura refund dijiye",
    "प्राप्त उत्पाद स्वीकार्य स्थिति में नहीं है कृपया तुरंत पिकअप करके पूरा रिफंड दें",
)


@dataclass
class ReturnData:
    requests: pd.DataFrame  # one row per return request (raw/return_requests)
    inspections: pd.DataFrame  # one row per inspected request (raw/inspections)
    behaviour: pd.Series  # hidden: behaviour per return_id (never written to the lake)


def _rng(config: SynthConfig, stage: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, 1000 + stage])


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _behaviours(rng: np.random.Generator, frame: pd.DataFrame) -> np.ndarray:
    abuse = frame["abuse_type"].fillna("none").to_numpy()
    u = rng.random(len(frame))
    size = (
        frame["reason_code"].eq("size_fit").to_numpy()
        & frame["category"].isin(["fashion", "footwear"]).to_numpy()
    )
    b = np.where(size & (u < 0.35), "size_bracketing", "honest").astype(object)
    rules = {
        "wardrobing": np.full(len(frame), "wardrober", dtype=object),
        "empty_box": np.full(len(frame), "empty_box_fraud", dtype=object),
        "damage_claim": np.where(u < 0.5, "swap_fraud", "serial_damage"),
        "serial_returner": np.full(len(frame), "serial_damage", dtype=object),
        "seller_collusion": np.where(u < 0.7, "swap_fraud", "empty_box_fraud"),
        "account_churn": np.where(u < 0.5, "no_show", "empty_box_fraud"),
        "cod_refusal": np.full(len(frame), "no_show", dtype=object),
    }
    abusive = frame["is_abuse"].fillna(0).to_numpy().astype(bool)
    for kind, chosen in rules.items():
        b = np.where(abusive & (abuse == kind), chosen, b)
    known = np.isin(abuse, list(rules))
    b = np.where(abusive & ~known, "serial_damage", b)  # an abuse type this module does not know yet
    return b


# days from delivery to the request, per behaviour: (low, high) of a uniform draw
_GAP_DAYS = {
    "honest": (0.2, 12.0),
    "size_bracketing": (0.5, 4.0),
    "wardrober": (3.0, 8.0),
    "empty_box_fraud": (0.0, 1.2),
    "swap_fraud": (6.0, 28.0),
    "serial_damage": (0.5, 6.0),
    "no_show": (0.5, 10.0),
}
# shares: text describes the code, vague, empty, scripted, another reason's words
_TEXT_MIX = {
    "honest": (0.74, 0.11, 0.14, 0.0, 0.01),
    "size_bracketing": (0.80, 0.05, 0.15, 0.0, 0.0),
    "wardrober": (0.55, 0.25, 0.15, 0.0, 0.05),
    "empty_box_fraud": (0.45, 0.15, 0.12, 0.25, 0.03),
    "swap_fraud": (0.50, 0.15, 0.10, 0.20, 0.05),
    "serial_damage": (0.60, 0.15, 0.10, 0.10, 0.05),
    "no_show": (0.30, 0.30, 0.25, 0.15, 0.0),
}
_OUTCOME = {
    "honest": "item_fine",
    "size_bracketing": "item_fine",
    "wardrober": "used_worn",
    "empty_box_fraud": "empty_box",
    "swap_fraud": "swapped_or_counterfeit",
    "serial_damage": "customer_damage",
    "no_show": "never_shipped_back",
}


def _text(rng: np.random.Generator, behaviour: str, code: str, language: str) -> str:
    says, vague, empty, scripted, _ = _TEXT_MIX[behaviour]
    u = rng.random()
    if u < empty:
        return ""
    if u < empty + scripted:
        return _pick(rng, _SCRIPTS)
    if u < empty + scripted + vague:
        body = _pick(rng, _VAGUE[language])
    elif u < empty + scripted + vague + says:
        body = _pick(rng, _SAYS[code][language])
    else:
        other = _pick(rng, tuple(c for c in _SAYS if c != code))
        body = _pick(rng, _SAYS[other][language])
    abusive = behaviour not in ("honest", "size_bracketing")
    tone = rng.random()
    if not abusive and tone < 0.22:  # honest and angry
        return f"{body}. {_pick(rng, _ANGRY[language])}"
    if abusive and tone < 0.40:  # abusive and polite
        return f"{_pick(rng, _POLITE_OPEN[language])} {body}. {_pick(rng, _POLITE_CLOSE[language])}"
    if tone > 0.9:
        return f"{_pick(rng, _POLITE_OPEN[language])} {body}."
    return body


def generate_returns(data: SyntheticData) -> ReturnData:
    """Return requests and inspections for the returns in `data`; deterministic in its config."""
    config = data.config
    rng = _rng(config, 1)
    returns = data.returns[data.returns["reason_code"] != "refused_delivery"]
    frame = returns.merge(
        data.orders[["order_id", "customer_id", "product_id", "seller_id", "order_time", "amount",
                     "delivery_address", "delivery_region"]],
        on="order_id",
        how="left",
    )  # fmt: skip
    frame = frame.merge(data.products[["product_id", "category"]], on="product_id", how="left")
    frame = frame.merge(data.labels[["order_id", "is_abuse", "abuse_type"]], on="order_id", how="left")
    frame = frame.sort_values("return_time", kind="stable").reset_index(drop=True)
    n = len(frame)
    behaviour = _behaviours(rng, frame)

    # The customer's language (stable per customer) and the request's timing.
    customers = data.customers["customer_id"].to_numpy()
    language_of = dict(zip(customers, np.array(LANGUAGES)[_choice(rng, [0.55, 0.30, 0.15], len(customers))],
                           strict=True))  # fmt: skip
    language = frame["customer_id"].map(language_of).to_numpy()
    order_ms = _ms(frame["order_time"])
    request_ms = _ms(frame["return_time"])
    low = np.array([_GAP_DAYS[b][0] for b in behaviour])
    high = np.array([_GAP_DAYS[b][1] for b in behaviour])
    gap = (low + (high - low) * rng.random(n)) * DAY_MS
    # Delivery lies after the order and before the request; a request soon after the order caps the gap.
    delivered = np.maximum(request_ms - gap.astype(np.int64), order_ms + (request_ms - order_ms) // 4)
    delivered = np.minimum(delivered, request_ms - 1)

    paid = frame["amount"].to_numpy()
    refund = paid.copy()
    bracket = behaviour == "size_bracketing"
    # Two sizes back from a bracketing order; now and then two items from anyone (a wardrober too).
    items = np.where(
        bracket, 2, np.where(rng.random(n) < np.where(behaviour == "wardrober", 0.2, 0.05), 2, 1)
    )
    abusive = ~np.isin(behaviour, ["honest", "size_bracketing"])
    partial = (~abusive) & (rng.random(n) < 0.06)
    refund = np.where(partial, np.round(paid * rng.uniform(0.3, 0.9, n), 2), refund)
    over = abusive & (rng.random(n) < 0.02)  # asks for more than was paid (shipping, "compensation")
    refund = np.where(over, np.round(paid * rng.uniform(1.05, 1.5, n), 2), refund)

    pickup = rng.random(n) < np.where(abusive, 0.9, 0.75)
    method = np.where(pickup, "pickup", "drop_off")
    elsewhere = pickup & (rng.random(n) < np.where(np.isin(behaviour, ["swap_fraud", "empty_box_fraud"]), 0.3,
                                                   np.where(abusive, 0.1, 0.04)))  # fmt: skip
    delivery_address = frame["delivery_address"].to_numpy()
    other_address = delivery_address[rng.permutation(n)] if n else delivery_address
    pickup_address = np.where(pickup, np.where(elsewhere, other_address, delivery_address), None)

    texts = [
        _text(rng, b, code, lang)
        for b, code, lang in zip(behaviour, frame["reason_code"].to_numpy(), language, strict=True)
    ]
    requests = pd.DataFrame(
        {
            "return_id": frame["return_id"],
            "order_id": frame["order_id"],
            "customer_id": frame["customer_id"],
            "product_id": frame["product_id"],
            "seller_id": frame["seller_id"],
            "category": frame["category"],
            "region": frame["delivery_region"],
            "return_time": frame["return_time"],
            "order_time": frame["order_time"],
            "delivered_at": _utc(delivered),
            "order_amount": paid,
            "refund_amount": refund,
            "currency": "INR",
            "reason_code": frame["reason_code"],
            "reason": texts,
            "status": "requested",
            "return_method": method,
            "item_count": items.astype(np.int64),
            "delivery_address": delivery_address,
            "pickup_address": pickup_address,
        }
    )

    # Inspections: the behaviour's outcome, a little noise, a delay; none after the range's end.
    outcome = np.array([_OUTCOME[b] for b in behaviour], dtype=object)
    flip = rng.random(n) < LABEL_NOISE
    careless = np.where(rng.random(n) < 0.5, "customer_damage", "used_worn")
    outcome = np.where(flip & ~abusive, careless, outcome)
    outcome = np.where(flip & abusive, "item_fine", outcome)
    delay_days = np.where(
        outcome == "never_shipped_back", rng.uniform(14.0, 20.0, n), rng.uniform(2.0, 12.0, n)
    )
    labeled = request_ms + (delay_days * DAY_MS).astype(np.int64)
    mature = labeled < config.end_ms
    inspections = pd.DataFrame(
        {
            "return_id": frame["return_id"].to_numpy()[mature],
            "outcome": outcome[mature],
            "is_abuse": np.array([outcome_label(o) for o in outcome[mature]], dtype=np.int64),
            "labeled_at": _utc(labeled[mature]),
        }
    )
    return ReturnData(requests, inspections, pd.Series(behaviour, index=frame["return_id"], name="behaviour"))


def _choice(rng: np.random.Generator, probabilities: list[float], n: int) -> np.ndarray:
    return rng.choice(len(probabilities), size=n, p=np.asarray(probabilities) / sum(probabilities))


def _ms(column: pd.Series) -> np.ndarray:
    return column.dt.tz_convert("UTC").to_numpy(dtype="datetime64[ms]").astype(np.int64)


def _utc(ms: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(ms, unit="ms", utc=True)).astype("datetime64[ms, UTC]")


def request_contexts(returns: ReturnData) -> list[ReturnRequestContext]:
    """The requests as `returnguard.returns` computes features from them, in return-time order."""
    r = returns.requests
    return [
        ReturnRequestContext(
            return_id=rid,
            order_id=oid,
            customer_id=cid,
            product_id=pid,
            seller_id=sid,
            category=cat,
            region=region,
            request_time_ms=int(t),
            delivered_at_ms=int(d),
            order_amount_minor=int(round(paid * 100)),
            refund_amount_minor=int(round(refund * 100)),
            reason_code=code,
            reason_text=text,
            return_method=method,
            item_count=int(count),
            delivery_address=delivery,
            pickup_address=pickup,
        )
        for rid, oid, cid, pid, sid, cat, region, t, d, paid, refund, code, text, method, count, delivery, pickup
        in zip(
            r["return_id"], r["order_id"], r["customer_id"], r["product_id"], r["seller_id"], r["category"],
            r["region"], _ms(r["return_time"]), _ms(r["delivered_at"]), r["order_amount"], r["refund_amount"],
            r["reason_code"], r["reason"], r["return_method"], r["item_count"], r["delivery_address"],
            r["pickup_address"], strict=True,
        )
    ]  # fmt: skip


def inspection_facts(returns: ReturnData) -> pd.DataFrame:
    """Per request: label (0 without an inspection yet), labeled_at_ms (None without one), outcome,
    and the hidden behaviour as abuse_type for per-pattern metrics: the columns the Spark job adds."""
    facts = pd.DataFrame({"return_id": returns.requests["return_id"]})
    known = returns.inspections.set_index("return_id")
    facts["label"] = facts["return_id"].map(known["is_abuse"]).fillna(0).astype(np.int64)
    facts["labeled_at_ms"] = facts["return_id"].map(pd.Series(_ms(known["labeled_at"]), index=known.index))
    facts["labeled_at_ms"] = facts["labeled_at_ms"].astype("Int64")
    facts["outcome"] = facts["return_id"].map(known["outcome"]).astype(object)
    facts["abuse_type"] = np.where(facts["label"] == 1, facts["outcome"], None)
    return facts


def replay_return_table(data: SyntheticData, returns: ReturnData) -> pd.DataFrame:
    """The return lane's training table by the pure-Python reference (no Spark): return_id,
    customer_id, return_time_ms, RETURN_FEATURE_NAMES, label, labeled_at_ms, outcome, abuse_type."""
    from returnguard.returns import replay_returns

    profiles, orders, order_returns = to_contexts(data)
    walk = replay_returns(profiles, orders, order_returns, request_contexts(returns))
    table = pd.DataFrame(
        [
            {"return_id": r.return_id, "customer_id": r.customer_id, "return_time_ms": r.request_time_ms, **v}
            for r, v in walk
        ]
    )
    return table.merge(inspection_facts(returns), on="return_id", how="left")


RETURN_TABLES = {"return_requests": "return_time", "inspections": "labeled_at"}


def write_returns_raw(returns: ReturnData, root: Path) -> dict[str, int]:
    """raw/return_requests/dt=<return date>/ and raw/inspections/dt=<labeled date>/, swapped in whole
    (a failure leaves the previous tables or none, never half of one), as synth.write_raw does."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".returns-staging-", dir=root))
    frames = {"return_requests": returns.requests, "inspections": returns.inspections}
    try:
        for table, time_column in RETURN_TABLES.items():
            frame = frames[table]
            days = pd.Series(_ms(frame[time_column]) // DAY_MS)
            arrow = pa.Table.from_pandas(frame, preserve_index=False)
            for day, rows in days.groupby(days).groups.items():
                folder = (
                    staging / table / f"dt={pd.Timestamp(int(day) * DAY_MS, unit='ms').date().isoformat()}"
                )
                folder.mkdir(parents=True)
                pq.write_table(arrow.take(pa.array(np.asarray(rows))), folder / "part-0000.parquet")
            (staging / table).mkdir(exist_ok=True)
        for table in RETURN_TABLES:
            target = root / "raw" / table
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                os.replace(target, staging / f"old-{table}")
            os.replace(staging / table, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {table: len(frame) for table, frame in frames.items()}


def summary(returns: ReturnData) -> dict[str, object]:
    known = returns.inspections
    return {
        "requests": len(returns.requests),
        "inspected": len(known),
        "abuse_rate": float(known["is_abuse"].mean()) if len(known) else 0.0,
        "outcomes": known["outcome"].value_counts().to_dict(),
        "languages": returns.requests["reason"].map(_language).value_counts().to_dict(),
    }


def _language(text: str) -> str:
    from returnguard.returns import text_language

    return text_language(text) or "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=SynthConfig.orders)
    parser.add_argument("--seed", type=int, default=SynthConfig.seed)
    parser.add_argument("--out", type=Path, default=Path("build/demo/lake"))
    parser.add_argument("--with-orders", action="store_true", help="also write the order generator's tables")
    args = parser.parse_args(argv)
    data = generate(SynthConfig(orders=args.orders, seed=args.seed))
    returns = generate_returns(data)
    if args.with_orders:
        write_raw(data, args.out)
    written = write_returns_raw(returns, args.out)
    for table, rows in written.items():
        print(f"  {table:<16} {rows:>10,} rows")
    info = summary(returns)
    print(f"  inspected {info['inspected']:,} of {info['requests']:,}; abusive {info['abuse_rate']:.1%}")
    print(f"  outcomes  {info['outcomes']}")
    print(f"  languages {info['languages']}")
    return 0


__all__ = [
    "BEHAVIOURS",
    "ReturnData",
    "generate_returns",
    "request_contexts",
    "to_contexts",
    "write_returns_raw",
]

if __name__ == "__main__":
    sys.exit(main())
