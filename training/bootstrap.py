"""`make model`: the bootstrap model `cdk deploy` ships, trained locally on synthetic data.

synthetic lake (orders and return requests) → Spark features → XGBoost (+ baselines) for orders and for
return requests → report, then packaged for SageMaker:
    build/model/model.tar.gz      xgboost-model.ubj, config.json, metrics.json, fallback_model.json
                                  (+ return/: the return model and its fallback, one archive
                                  for both lanes)
                                  (SageMaker model layout)
    build/model/sourcedir.tar.gz  inference.py, train.py, requirements.txt, returnguard/ (script mode)
    build/model/config.json       what the API stack reads (model version, thresholds)
    build/model/fallback_model.json  the fallback the API stack ships inside the score function
    build/model/return/{config,fallback_model}.json  the return lane's, the same way
It works in the demo's folder (build/demo), so after `make demo` with the same orders and seed the
lake and the Spark features are reused and only training runs again; `--force` redoes every step.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from returnguard.drift import BASELINE_FILE
from returnguard.fallback import FILE_NAME as FALLBACK_FILE
from returnguard.payment_scoring import PAYMENT_MODEL_DIR
from returnguard.returns_policy import RETURN_MODEL_DIR

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PipelinePaths:
    work: Path

    @property
    def lake(self) -> Path:
        return self.work / "lake"

    @property
    def raw(self) -> Path:
        return self.lake / "raw"

    @property
    def processed(self) -> Path:
        return self.lake / "processed"

    @property
    def table(self) -> Path:
        return self.processed / "training-data"

    @property
    def return_table(self) -> Path:
        return self.processed / "return-training-data"

    @property
    def return_model(self) -> Path:
        return self.model / RETURN_MODEL_DIR

    @property
    def return_output(self) -> Path:
        return self.output / RETURN_MODEL_DIR

    @property
    def online(self) -> Path:
        return self.processed / "features" / "online"

    @property
    def model(self) -> Path:
        return self.work / "model"

    @property
    def output(self) -> Path:
        return self.work / "output"

    @property
    def report(self) -> Path:
        return self.work / "report"


def step(number: int, total: int, title: str) -> float:
    print(f"\n[{number}/{total}] {title}", flush=True)
    return time.perf_counter()


def done(started: float, what: str = "") -> None:
    print(f"      done in {time.perf_counter() - started:.1f}s {what}".rstrip(), flush=True)


def _stamp_matches(path: Path, settings: dict) -> bool:
    stamp = path / ".settings.json"
    return stamp.exists() and json.loads(stamp.read_text()) == settings


def _write_stamp(path: Path, settings: dict) -> None:
    (path / ".settings.json").write_text(json.dumps(settings))


def generate_lake(paths: PipelinePaths, orders: int, seed: int, force: bool = False) -> dict:
    from returnguard import synth, synth_returns

    settings = {"orders": orders, "seed": seed, "return_requests": True}
    if not force and _stamp_matches(paths.lake, settings) and paths.raw.exists():
        print("      reusing the synthetic lake generated earlier with the same settings", flush=True)
        return settings
    if paths.lake.exists():
        shutil.rmtree(paths.lake)
    data = synth.generate(synth.SynthConfig(orders=orders, seed=seed))
    rows = synth.write_raw(data, paths.lake)
    rows |= synth_returns.write_returns_raw(synth_returns.generate_returns(data), paths.lake)
    _write_stamp(paths.lake, settings)
    print(f"      {', '.join(f'{k}: {v:,}' for k, v in rows.items())}", flush=True)
    return settings


def build_features(paths: PipelinePaths, force: bool = False) -> dict:
    stamp = paths.processed / ".settings.json"
    lake_stamp = paths.lake / ".settings.json"
    if not force and stamp.exists() and lake_stamp.exists() and stamp.read_text() == lake_stamp.read_text():
        print("      reusing features built from this lake", flush=True)
        return {}
    from glue_jobs.features import local_session, run

    spark = local_session("local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    try:
        counts = run(spark, str(paths.raw), str(paths.processed))
    finally:
        from local.spark import stop

        stop(spark)
    shutil.copyfile(lake_stamp, stamp)
    return counts


def train_model(paths: PipelinePaths, baselines: bool = True, extra: list[str] | None = None) -> dict:
    from training import train

    args = train.parse_args(
        [
            "--train",
            str(paths.table),
            "--model-dir",
            str(paths.model),
            "--output-data-dir",
            str(paths.output),
            "--baselines",
            "1" if baselines else "0",
            *(extra or []),
        ]
    )
    result = train.run(args)
    if paths.return_table.exists():
        result["return"] = train_return_model(paths, baselines, extra)
    return result


def train_return_model(
    paths: PipelinePaths, baselines: bool = True, extra: list[str] | None = None
) -> dict | None:
    """The return model (train.py --lane return) into model/return/, packed beside the order model.
    A history too short for it leaves no return model (and none from an earlier run), said in one line."""
    from training import train

    args = train.parse_args(
        [
            "--train",
            str(paths.return_table),
            "--model-dir",
            str(paths.return_model),
            "--output-data-dir",
            str(paths.return_output),
            "--lane",
            "return",
            "--return_window_days",
            "0",
            "--baselines",
            "1" if baselines else "0",
            *(extra or []),
        ]
    )
    try:
        return train.run(args)
    except train.TrainingDataError as error:
        shutil.rmtree(paths.return_model, ignore_errors=True)
        print(f"      no return model: {error}", flush=True)
        return None


def write_report(paths: PipelinePaths) -> Path:
    import pandas as pd

    from local.embeddings import lake_reason_clusters
    from training.evaluate import build_report

    clusters = lake_reason_clusters(paths.raw)  # the report's section on customers' return reasons
    returns = None
    if (paths.return_model / "config.json").is_file() and paths.return_table.exists():
        returns = (paths.return_model, paths.return_output, pd.read_parquet(paths.return_table))
    return build_report(
        paths.model,
        paths.output,
        paths.report,
        pd.read_parquet(paths.table),
        returns,
        extra_sections=clusters,
    )


def package(model_dir: Path, out: Path) -> tuple[Path, Path]:
    """model.tar.gz (artifacts at the archive root) and sourcedir.tar.gz (code for script mode)."""
    out.mkdir(parents=True, exist_ok=True)
    model_tar = out / "model.tar.gz"
    with tarfile.open(model_tar.with_suffix(".tmp"), "w:gz") as archive:
        for name in ("xgboost-model.ubj", "config.json", "metrics.json", FALLBACK_FILE, BASELINE_FILE):
            archive.add(model_dir / name, arcname=name)
        # the return and payment lanes' models ride in the same archive (training/inference.py serves all)
        for lane in (RETURN_MODEL_DIR, PAYMENT_MODEL_DIR):
            for path in sorted((model_dir / lane).glob("*")):
                if path.name in ("xgboost-model.ubj", "config.json", "metrics.json", FALLBACK_FILE):
                    archive.add(path, arcname=f"{lane}/{path.name}")
    model_tar.with_suffix(".tmp").replace(model_tar)
    source_tar = out / "sourcedir.tar.gz"
    with tarfile.open(source_tar.with_suffix(".tmp"), "w:gz") as archive:
        for name in ("inference.py", "train.py", "requirements.txt"):
            archive.add(ROOT / "training" / name, arcname=name)
        archive.add(
            ROOT / "returnguard",
            arcname="returnguard",
            filter=lambda info: None if "__pycache__" in info.name else info,
        )
    source_tar.with_suffix(".tmp").replace(source_tar)
    shutil.copyfile(model_dir / "config.json", out / "config.json")
    shutil.copyfile(model_dir / FALLBACK_FILE, out / FALLBACK_FILE)
    for lane in (RETURN_MODEL_DIR, PAYMENT_MODEL_DIR):
        if (model_dir / lane / "config.json").is_file():  # stacks.config reads its thresholds
            (out / lane).mkdir(exist_ok=True)
            shutil.copyfile(model_dir / lane / "config.json", out / lane / "config.json")
            if (model_dir / lane / FALLBACK_FILE).is_file():  # the score function ships it
                shutil.copyfile(model_dir / lane / FALLBACK_FILE, out / lane / FALLBACK_FILE)
    return model_tar, source_tar


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "build" / "model"), help="where the archives go")
    parser.add_argument(
        "--work",
        default=str(ROOT / "build" / "demo"),
        help="lake, features and model (shared with make demo)",
    )
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    paths = PipelinePaths(Path(args.work))
    total = 4
    started = step(1, total, f"synthetic lake: {args.orders:,} orders (seed {args.seed})")
    generate_lake(paths, args.orders, args.seed, args.force)
    done(started)
    started = step(2, total, "Spark feature job (point-in-time)")
    build_features(paths, args.force)
    done(started)
    started = step(3, total, "train XGBoost and baselines on a time split")
    train_model(paths)
    write_report(paths)
    done(started)
    started = step(4, total, "package for SageMaker")
    model_tar, source_tar = package(paths.model, out)
    done(
        started,
        f"→ {model_tar} ({model_tar.stat().st_size:,} B), {source_tar} ({source_tar.stat().st_size:,} B)",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
