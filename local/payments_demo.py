"""`make demo`'s card payments (issue 12): a small payment model trained by the code `make model` uses,
packed into the demo's model folder as `payment/` before the model server starts, its history's latest
items in the local features table, and a few payments scored on the same API, an account-takeover
burst among them.

generated card history (returnguard.payment_synth) → point-in-time features (returnguard.payments.replay,
no Spark) → training/payments.py → <model>/payment/; the replay's latest items → the features table.
Trained once per settings under <work>/payment-lane/ and reused (a few seconds on a fresh clone).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from returnguard import payment_synth
from returnguard.payment_scoring import PAYMENT_MODEL_DIR
from returnguard.payments import replay
from training.payment_bootstrap import LANE_FILES

# small on purpose: the demo's budget; `make model` trains the lane AWS serves on 400 customers, 90 days
SETTINGS = {"customers": 100, "days": 40, "seed": 17, "alerts_per_day": 4.0, "label_maturity_days": 10}
ITEMS_FILE = "latest-items.json"
NEW_FILE = "new-payments.parquet"
NEW_DAYS = 3  # the generated history's last days: the payments the demo scores
GENUINE = 4
FRAUDS_PER_SCENARIO = 5  # a takeover's burst can be longer: its first five


def prepare(work: Path, model_dir: Path, force: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """The lane in `<model_dir>/payment/` (trained once per SETTINGS) and the history's latest items."""
    lane = work / "payment-lane"
    stamp = lane / "settings.json"
    trained = stamp.is_file() and json.loads(stamp.read_text()) == SETTINGS
    outputs = [lane / "model" / name for name in LANE_FILES] + [lane / ITEMS_FILE, lane / NEW_FILE]
    if force or not trained or not all(path.is_file() for path in outputs):
        _train(lane)
        stamp.write_text(json.dumps(SETTINGS))
    target = model_dir / PAYMENT_MODEL_DIR
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in LANE_FILES:
        shutil.copyfile(lane / "model" / name, target / name)
    return [(key, item) for key, item in json.loads((lane / ITEMS_FILE).read_text())]


def _train(lane: Path) -> None:
    from training import payments

    config = payment_synth.PaymentSynthConfig(
        customers=SETTINGS["customers"], days=SETTINGS["days"], seed=SETTINGS["seed"]
    )
    table = payment_synth.generate(config)
    # the last NEW_DAYS are the demo's new payments: the model and the tables know only what came before
    cutoff = table.transaction_time.max() - pd.Timedelta(days=NEW_DAYS)
    history, new = table[table.transaction_time < cutoff], table[table.transaction_time >= cutoff]
    known = history.label.eq(1).fillna(False) & history.labeled_at.lt(cutoff).fillna(False)
    history = history.assign(label=history.label.where(known, pd.NA))  # fraud reported after the cutoff
    store, walk = replay(*payment_synth.to_contexts(history))
    rows = pd.DataFrame([vector for _, vector in walk])
    rows["label"] = known.astype(int).to_numpy()
    rows["transaction_time_ms"] = payment_synth._ms(history["transaction_time"])
    lane.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(lane / "training-data.parquet")
    argv = ["--training-data", str(lane / "training-data.parquet"), "--out", str(lane / "model"),
            "--label-maturity-days", str(SETTINGS["label_maturity_days"]),
            "--alerts-per-day", str(SETTINGS["alerts_per_day"]), "--num-round", "120", "--forest-trees", "20",
            "--no-report"]  # fmt: skip
    with open(lane / "train.log", "w") as log, contextlib.redirect_stdout(log):
        payments.train(argv)
    (lane / ITEMS_FILE).write_text(json.dumps(sorted(store.items.items())))
    new.to_parquet(lane / NEW_FILE)


def sample_payments(work: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Payments of the days after the history, in time order, with what each was (the generator's
    scenario; the API never sees it): the frauds of those days (an account takeover's burst, cards
    skimmed at a compromised terminal; FRAUDS_PER_SCENARIO of each) and GENUINE ordinary ones."""
    new = pd.read_parquet(work / "payment-lane" / NEW_FILE)
    genuine = new[new.scenario == "genuine"]
    frauds = new[new.scenario != "genuine"].groupby("scenario").head(FRAUDS_PER_SCENARIO)
    picked = pd.concat([frauds, genuine.iloc[:: max(1, len(genuine) // GENUINE)][:GENUINE]])
    picked = picked.sort_values("transaction_time")
    requests = [
        {
            "event_type": "payment",
            "payment": {
                **{k: str(row[k]) for k in ("transaction_id", "customer_id", "card_fingerprint", "merchant_id",
                                             "terminal_id", "currency", "channel")},
                "amount": round(float(row["amount"]), 2),
                "transaction_time": row["transaction_time"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            },
        }
        for _, row in picked.iterrows()
    ]  # fmt: skip
    return requests, picked.scenario.tolist()


def score_payments(api_url: str, requests: list[dict[str, Any]], scenarios: list[str]) -> list[str]:
    """POST each payment to /v1/risk-score; the lines to print."""
    from returnguard.cli import Client

    client = Client(api_url)
    lines = [
        f"{'payment':<11} {'customer':<8} {'time':<11} {'channel':<7} {'amount':>8} {'was':<8}  score  "
        f"{'action':<22} top factor"
    ]
    versions, degraded = set(), 0
    for request, scenario in zip(requests, scenarios, strict=True):
        body, payment = client.score(request), request["payment"]
        versions.add(body["model_version"])
        degraded += bool(body["degraded"])
        factors = body["explanation"]["key_factors"]
        lines.append(
            f"{payment['transaction_id']:<11} {payment['customer_id']:<8} {payment['transaction_time'][5:16]:<11} "
            f"{payment['channel']:<7} {payment['amount']:>8.2f} {scenario:<8}  {body['risk_score']:.3f}  "
            f"{body['recommended_action']:<22} "
            f"{factors[0] if factors else ''}"
        )
    return [f"payment model {', '.join(sorted(versions))}; degraded decisions: {degraded}", *lines]
