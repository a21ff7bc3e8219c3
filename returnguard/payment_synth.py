"""Deterministic synthetic card transactions (the raw schema of returnguard.payments) with fraud behaviours.

The generator simulates customers, their cards, merchants and terminals, and lets fraud happen the
way it does, not by writing feature values:
- compromised terminals: a skimming or colluding terminal adds a second, larger charge on some of the
  cards paid there, minutes later, for the weeks the compromise lasts;
- compromised cards: a card's details leak, and a fraudster spends with it online over the next days,
  at merchants that sell resaleable goods, until the first fraud is reported and the card is blocked
  (the customer then gets a new card);
- account takeover: someone takes over an account, adds a card the customer never used, and runs a
  burst of online payments within minutes;
- drift: fraud becomes more frequent over the period and its mix moves from terminals to takeovers,
  while genuine customers shop more online;
- label delay: a fraud becomes known (a chargeback, a customer's call) days later; a fraud not yet
  reported by the end of the extract has no label.
Genuine behaviour that looks alike is there too: customers replace cards, go on shopping sprees,
make large one-off purchases, and use new merchants.

`scenario` (genuine, terminal, card, takeover) is ground truth for reports and tests; it is not a raw
field and nothing the features read is derived from it. numpy/pandas are fine here: never on the
scoring path.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from returnguard.calendar import DAY_MS
from returnguard.payments import FraudLabel, PaymentContext

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
CURRENCY = "EUR"
SCENARIOS = ("genuine", "terminal", "card", "takeover")


@dataclass(frozen=True)
class PaymentSynthConfig:
    customers: int = 500
    days: int = 60
    seed: int = 7
    start: date = date(2026, 1, 1)
    fraud_intensity: float = 1.0  # scales every fraud mechanism
    payments_per_customer_day: float = 1.2  # mean over customers

    @property
    def start_ms(self) -> int:
        return (
            int(datetime(self.start.year, self.start.month, self.start.day, tzinfo=timezone.utc).timestamp())
            * 1000
        )

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.days * DAY_MS

    @property
    def terminals(self) -> int:
        return max(30, self.customers // 5)

    @property
    def merchants(self) -> int:
        return max(10, self.terminals // 3)


def _fingerprint(rng: np.random.Generator) -> str:
    return "fp_" + "".join(rng.choice(list("0123456789abcdef"), 16))


def generate(config: PaymentSynthConfig) -> pd.DataFrame:
    """Transactions sorted by time: the raw fields (returnguard.payments.TRANSACTION_FIELDS) + scenario."""
    rng = np.random.default_rng([config.seed, 12])
    n_terminals, n_merchants = config.terminals, config.merchants
    kind = rng.choice(["pos", "online", "atm"], size=n_terminals, p=[0.6, 0.3, 0.1])
    for i, wanted in enumerate(("pos", "online", "atm")):  # every kind exists, however few terminals
        if not (kind == wanted).any():
            kind[i] = wanted
    merchant_of = rng.integers(0, n_merchants, n_terminals)
    # resaleable goods: fraudsters prefer these online checkouts
    online = np.flatnonzero(kind == "online")
    pos = np.flatnonzero(kind == "pos")
    atm = np.flatnonzero(kind == "atm")
    hot_online = rng.choice(online, size=max(1, len(online) // 5), replace=False)
    popularity = rng.pareto(1.5, n_terminals) + 1.0

    def drift(t_ms: np.ndarray | float) -> np.ndarray:
        return 0.6 + 0.8 * (np.asarray(t_ms, dtype=float) - config.start_ms) / (
            config.end_ms - config.start_ms
        )

    rows: list[tuple] = []  # (t, customer, card, terminal, amount, scenario)
    compromised_until = np.full(n_terminals, -1, dtype=np.int64)
    compromised_from = np.full(n_terminals, -1, dtype=np.int64)
    # Terminal compromises start through the period, more of them early on (the mix drifts).
    for day in range(config.days):
        t_day = config.start_ms + day * DAY_MS
        expected = config.fraud_intensity * n_terminals * 0.0015 * (1.6 - 0.7 * day / config.days)
        for terminal in rng.choice(pos, size=rng.poisson(expected), replace=True):
            if compromised_until[terminal] < t_day:
                compromised_from[terminal] = t_day + int(rng.integers(0, DAY_MS))
                compromised_until[terminal] = compromised_from[terminal] + int(rng.uniform(10, 35) * DAY_MS)

    for c in range(config.customers):
        customer = f"C{c:06d}"
        mean_amount = rng.lognormal(3.4, 0.6)
        rate = config.payments_per_customer_day * rng.gamma(2.0, 0.5)
        online_share = rng.beta(2, 5)
        near = rng.choice(
            pos, size=min(len(pos), 6), replace=False, p=popularity[pos] / popularity[pos].sum()
        )
        shops_online = rng.choice(online, size=min(len(online), 4), replace=False)
        card = _fingerprint(rng)
        blocked_at: int | None = None  # the card in use is blocked then; a new one follows
        n = rng.poisson(rate * config.days)
        times = np.sort(config.start_ms + (rng.random(n) * config.days * DAY_MS).astype(np.int64))
        # daytime shopping: move each payment to a daytime hour of its day
        day_start = times - times % DAY_MS
        hours = np.clip(rng.normal(14.0, 3.5, n), 6.0, 23.5)
        times = np.sort(day_start + (hours * HOUR_MS).astype(np.int64))
        # shopping sprees: some payments come with one to three more within the hour
        spree = rng.random(n) < 0.04
        extra = [t + np.sort(rng.integers(2 * MINUTE_MS, HOUR_MS, rng.integers(1, 4))) for t in times[spree]]
        if extra:
            times = np.sort(np.concatenate([times, *extra]))
        replaced_at = (
            config.start_ms + int(rng.random() * config.days * DAY_MS) if rng.random() < 0.1 else None
        )
        stolen_at = None
        theft_p = (
            config.fraud_intensity * 0.0015 * config.days * float(np.mean(drift(times)))
            if len(times)
            else 0.0
        )
        if rng.random() < theft_p:
            stolen_at = config.start_ms + int(rng.random() * config.days * DAY_MS)
        takeover_p = config.fraud_intensity * 0.0008 * config.days
        takeover_at = None
        if rng.random() < takeover_p:
            # takeovers cluster late in the period (drift)
            takeover_at = config.start_ms + int(np.sqrt(rng.random()) * config.days * DAY_MS)

        cards_over_time: list[tuple[int, str]] = [(config.start_ms - DAY_MS, card)]
        if replaced_at is not None:
            cards_over_time.append((replaced_at, _fingerprint(rng)))
        customer_rows: list[tuple] = []
        for t in times.tolist():
            current = [fp for since, fp in cards_over_time if since <= t][-1]
            channel_draw = rng.random()
            if channel_draw < online_share:
                terminal = int(rng.choice(shops_online))
            elif channel_draw < online_share + 0.06:
                terminal = int(rng.choice(atm))
            else:
                terminal = int(rng.choice(near))
            amount = rng.lognormal(np.log(mean_amount), 0.5)
            if rng.random() < 0.02:
                amount *= rng.uniform(4, 10)  # a one-off large purchase
            if kind[terminal] == "atm":
                amount = float(rng.choice([20, 40, 50, 100, 200]))
            customer_rows.append((t, customer, current, terminal, amount, "genuine"))
            if compromised_from[terminal] <= t < compromised_until[terminal] and rng.random() < 0.45:
                later = t + int(rng.integers(MINUTE_MS, 45 * MINUTE_MS))
                customer_rows.append(
                    (later, customer, current, terminal, amount * rng.uniform(1.5, 4.0), "terminal")
                )

        if stolen_at is not None:
            victim = [fp for since, fp in cards_over_time if since <= stolen_at][-1]
            first_fraud = stolen_at + int(rng.integers(HOUR_MS, 2 * DAY_MS))
            k = int(rng.integers(2, 9))
            span = int(rng.uniform(0.3, 5) * DAY_MS)
            fraud_times = np.sort(first_fraud + rng.integers(0, span, k))
            for t in fraud_times.tolist():
                terminal = int(rng.choice(hot_online)) if rng.random() < 0.7 else int(rng.choice(online))
                amount = rng.lognormal(np.log(mean_amount) + 1.0, 0.7)
                customer_rows.append((t, customer, victim, terminal, amount, "card"))
            blocked_at = int(fraud_times[0])
            cards_over_time.append((blocked_at + int(rng.integers(2, 6)) * DAY_MS, _fingerprint(rng)))

        if takeover_at is not None:
            attacker_card = _fingerprint(rng)
            k = int(rng.integers(3, 11))
            fraud_times = np.sort(takeover_at + rng.integers(0, int(rng.uniform(5, 40) * MINUTE_MS), k))
            for t in fraud_times.tolist():
                terminal = int(rng.choice(hot_online)) if rng.random() < 0.5 else int(rng.choice(online))
                amount = rng.lognormal(np.log(mean_amount) + 0.6, 0.6)
                customer_rows.append((t, customer, attacker_card, terminal, amount, "takeover"))

        rows.extend(r for r in customer_rows if config.start_ms <= r[0] < config.end_ms)
        del blocked_at

    frame = pd.DataFrame(
        rows, columns=["t", "customer_id", "card_fingerprint", "terminal", "amount", "scenario"]
    )
    frame = frame.sort_values(["t", "customer_id"], kind="stable").reset_index(drop=True)
    terminal_ids = np.array([f"T{i:05d}" for i in range(n_terminals)])
    merchant_ids = np.array([f"M{i:04d}" for i in range(n_merchants)])
    index = frame.pop("terminal").to_numpy()
    t = frame.pop("t").to_numpy(dtype=np.int64)
    fraud = frame["scenario"].to_numpy() != "genuine"
    # Label delay: a fraud is known hours to weeks later; a few genuine payments are disputed and
    # confirmed genuine. Whatever becomes known after the extract's end has no label yet.
    delay = np.maximum(HOUR_MS, rng.lognormal(np.log(3 * DAY_MS), 0.9, len(frame))).astype(np.int64)
    disputed = ~fraud & (rng.random(len(frame)) < 0.005)
    labeled_at = t + delay
    known = (fraud | disputed) & (labeled_at < config.end_ms)
    table = pd.DataFrame(
        {
            "transaction_id": [f"X{i:09d}" for i in range(len(frame))],
            "customer_id": frame["customer_id"],
            "card_fingerprint": frame["card_fingerprint"],
            "merchant_id": merchant_ids[merchant_of[index]],
            "terminal_id": terminal_ids[index],
            "amount": np.round(frame["amount"].to_numpy(), 2).clip(0.5, None),
            "currency": CURRENCY,
            "transaction_time": pd.to_datetime(t, unit="ms", utc=True),
            "channel": kind[index],
            "label": pd.array(np.where(known, fraud.astype(int), 0), dtype="Int8"),
            "labeled_at": pd.to_datetime(np.where(known, labeled_at, 0), unit="ms", utc=True),
            "scenario": frame["scenario"],
        }
    )
    table.loc[~known, "label"] = pd.NA
    table.loc[~known, "labeled_at"] = pd.NaT
    return table


# --- conversions for the replay, the lake and the stream ------------------------------------------------


def _ms(column: pd.Series) -> np.ndarray:
    return column.astype("datetime64[ms, UTC]").astype("int64").to_numpy()


def to_contexts(table: pd.DataFrame) -> tuple[list[PaymentContext], list[FraudLabel]]:
    """Payments and known fraud labels as returnguard.payments.replay takes them."""
    times = _ms(table["transaction_time"])
    minor = np.round(table["amount"].to_numpy() * 100).astype(np.int64)
    columns = ["transaction_id", "customer_id", "card_fingerprint", "merchant_id", "terminal_id"]
    values = [dict(zip(columns, row, strict=True)) for row in table[columns].to_numpy().tolist()]
    payments = [
        PaymentContext(**facts, time_ms=int(t), amount_minor=int(m), channel=str(ch))
        for facts, t, m, ch in zip(values, times, minor, table["channel"].to_numpy(), strict=True)
    ]
    fraud = (table["label"] == 1).fillna(False).to_numpy(dtype=bool)
    labeled = _ms(table.loc[fraud, "labeled_at"])
    labels = [
        FraudLabel(**facts, labeled_at_ms=int(t))
        for facts, t in zip([v for v, f in zip(values, fraud, strict=True) if f], labeled, strict=True)
    ]
    return payments, labels


def raw_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The raw schema's columns only (what lands in `raw/payments/`)."""
    from returnguard.payments import TRANSACTION_FIELDS

    return table[list(TRANSACTION_FIELDS)]


def write_raw(table: pd.DataFrame, root: Path) -> int:
    """`root/raw/payments/dt=YYYY-MM-DD/part-0000.parquet` by transaction date, swapped in whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    (root / "raw").mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".payments-staging-", dir=root / "raw"))
    try:
        frame = raw_frame(table)
        day = frame["transaction_time"].dt.strftime("%Y-%m-%d").to_numpy()
        for dt in sorted(set(day)):
            folder = staging / f"dt={dt}"
            folder.mkdir(parents=True)
            part = frame[day == dt]
            pq.write_table(
                pa.Table.from_pandas(part, preserve_index=False),
                folder / "part-0000.parquet",
                coerce_timestamps="ms",  # Spark reads milliseconds, not pandas nanoseconds
            )
        target = root / "raw" / "payments"
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(table)


def events(table: pd.DataFrame) -> list[dict]:
    """The history as stream envelopes: one `payment` per transaction (its label, when known, rides
    along and counts from labeled_at)."""
    from returnguard.events import envelope

    out = []
    frame = raw_frame(table)
    times = _ms(frame["transaction_time"])
    for row, t in zip(frame.to_dict("records"), times, strict=True):
        payload = {
            "transaction_id": row["transaction_id"],
            "customer_id": row["customer_id"],
            "card_fingerprint": row["card_fingerprint"],
            "merchant_id": row["merchant_id"],
            "terminal_id": row["terminal_id"],
            "amount": float(row["amount"]),
            "currency": row["currency"],
            "channel": row["channel"],
        }
        if not pd.isna(row["label"]):
            payload["label"] = int(row["label"])
            payload["labeled_at"] = row["labeled_at"].isoformat().replace("+00:00", "Z")
        out.append(envelope("payment", f"pay-{row['transaction_id']}", int(t), payload))
    return out


def summary(table: pd.DataFrame) -> dict[str, object]:
    return {
        "transactions": len(table),
        "fraud": int((table["scenario"] != "genuine").sum()),
        "by_scenario": table["scenario"].value_counts().to_dict(),
        "labelled_fraud": int((table["label"] == 1).sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m returnguard.payment_synth", description=__doc__)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lake", required=True, help="writes raw/payments/ under this folder")
    args = parser.parse_args(argv)
    table = generate(PaymentSynthConfig(customers=args.customers, days=args.days, seed=args.seed))
    write_raw(table, Path(args.lake))
    print(summary(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
