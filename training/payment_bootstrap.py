"""`make model`'s payment lane (issue 12): a synthetic card-payment history → its point-in-time features
(the reference replay, returnguard.payments.replay: no Spark) → training/payments.py → `<model>/payment/`,
then the archive packed again with the lane (training.bootstrap.package). So the endpoint `cdk deploy`
ships serves a payment model, and RG_MODEL_CONFIG carries its thresholds under `payment`; without it
every payment is decided degraded (rules only, never an approval).

    .venv/bin/python -m training.payment_bootstrap     # after training.bootstrap; `make model` runs both

The lane is trained once per settings under <work>/payments/ and reused; --force trains it again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

from returnguard import payment_synth
from returnguard.payment_scoring import PAYMENT_MODEL_DIR
from returnguard.payments import replay
from training.bootstrap import ROOT, PipelinePaths, package

LANE_FILES = ("xgboost-model.ubj", "config.json", "metrics.json")


def history_table(config: payment_synth.PaymentSynthConfig) -> pd.DataFrame:
    """One row per payment: its point-in-time features, the label the lake knows (`label` 1 = a fraud
    reported by the history's end; an unreported fraud is 0, as it is to the Spark job) and its time."""
    table = payment_synth.generate(config)
    _, walk = replay(*payment_synth.to_contexts(table))
    rows = pd.DataFrame([vector for _, vector in walk])
    rows["label"] = (table["label"] == 1).fillna(False).astype(int).to_numpy()
    rows["transaction_time_ms"] = payment_synth._ms(table["transaction_time"])
    return rows


def train_lane(work: Path, settings: dict, force: bool = False) -> Path:
    """The payment model under <work>/payments/model (reused when trained with the same settings)."""
    lane = work / "payments" / "model"
    stamp = work / "payments" / ".model-settings.json"
    trained = stamp.is_file() and all((lane / name).is_file() for name in LANE_FILES)
    if not force and trained and json.loads(stamp.read_text()) == settings:
        print(f"      reusing the payment model in {lane}", flush=True)
        return lane
    from training import payments

    config = payment_synth.PaymentSynthConfig(
        customers=settings["customers"], days=settings["days"], seed=settings["seed"]
    )
    data = work / "payments" / "training-data.parquet"
    data.parent.mkdir(parents=True, exist_ok=True)
    history_table(config).to_parquet(data)
    payments.train(
        [
            "--training-data", str(data),
            "--out", str(lane),
            "--alerts-per-day", str(settings["alerts_per_day"]),
        ]
    )  # fmt: skip
    stamp.write_text(json.dumps(settings))
    return lane


def add_lane(lane: Path, model_dir: Path, out: Path) -> tuple[Path, Path]:
    """Copy the payment model's files into `<model_dir>/payment/` and pack the archives again into `out`."""
    target = model_dir / PAYMENT_MODEL_DIR
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in LANE_FILES:
        shutil.copyfile(lane / name, target / name)
    return package(model_dir, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.payment_bootstrap",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--alerts-per-day", type=float, default=12.0, help="review budget (about 25 per 1,000 payments here)"
    )
    parser.add_argument("--out", default=str(ROOT / "build" / "model"), help="where the archives go")
    parser.add_argument(
        "--work", default=str(ROOT / "build" / "demo"), help="training.bootstrap's work folder"
    )
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    paths = PipelinePaths(Path(args.work))
    if not (paths.model / "config.json").is_file():
        print(f"no order model in {paths.model}: run `python -m training.bootstrap` first", file=sys.stderr)
        return 2
    settings = {k: getattr(args, k) for k in ("customers", "days", "seed", "alerts_per_day")}
    print(
        f"payment lane: {args.customers:,} customers over {args.days} days (seed {args.seed}), "
        "replayed point in time, trained by training/payments.py",
        flush=True,
    )
    lane = train_lane(paths.work, settings, args.force)
    model_tar, _ = add_lane(lane, paths.model, Path(args.out))
    version = json.loads((lane / "config.json").read_text()).get("model_version")
    print(f"      payment model {version} packed into {model_tar}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
