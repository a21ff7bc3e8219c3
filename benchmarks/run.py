"""`make bench`: run every benchmarks/bench_*.py, write build/bench/results.json, print a table.

`make bench SCALE=quick` runs the small scale; `make bench UPDATE=1` (or `--out
benchmarks/results.json`) rewrites the tracked results the docs quote. Before it starts it says how
long the last recorded run of that scale took.

Each module exposes `run(scale: str) -> list[dict]`; a row has `name`, `value`, `unit` and, where the
benchmark runs a baseline in the same process, `baseline` and `ratio` (ours / baseline) so results
compare across machines. Scale "quick" keeps everything small; "full" (the default) is what the
closing notes quote.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORDED = HERE / "results.json"  # the tracked results the docs quote
DEFAULT_OUT = HERE.parent / "build" / "bench" / "results.json"


def expected_duration(scale: str, modules: list[str], *recorded: Path) -> str:
    """How long the last recorded run of these suites at this scale took, for the line before starting."""
    for path in recorded:
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if previous.get("scale") != scale:
            continue
        suites = previous.get("suites", {})
        known = [suites[m]["seconds"] for m in modules if m in suites]
        if known and len(known) == len(modules):
            return f"about {sum(known) / 60:.0f} min (last recorded run, {path.name})"
    return "unknown (no recorded run at this scale): quick takes minutes, full about 40 min"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=["quick", "full"], default="full")
    parser.add_argument("--only", help="run only bench_<ONLY>.py")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="default build/bench/results.json")
    args = parser.parse_args(argv)

    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if args.only:
        modules = [m for m in modules if m == f"bench_{args.only}"]
    results: dict[str, object] = {
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "scale": args.scale,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "suites": {},
    }
    if args.only and Path(args.out).exists():  # one suite re-run: keep the other suites' last results
        previous = json.loads(Path(args.out).read_text())
        if previous.get("scale") == args.scale:
            results["suites"] = previous.get("suites", {})
    print(
        f"benchmarks at scale {args.scale} ({len(modules)} suites): "
        f"{expected_duration(args.scale, modules, Path(args.out), RECORDED)}"
        + ("; make bench SCALE=quick is the small scale" if args.scale == "full" else ""),
        flush=True,
    )
    failed = False
    for name in modules:
        print(f"==> {name}", flush=True)
        started = time.perf_counter()
        try:
            rows = importlib.import_module(f"benchmarks.{name}").run(args.scale)
        except Exception:  # one broken suite must not hide the others' numbers
            traceback.print_exc()
            rows, failed = [{"name": "error", "value": None, "unit": "", "note": "suite failed"}], True
        results["suites"][name] = {"seconds": round(time.perf_counter() - started, 2), "rows": rows}  # type: ignore[index]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwrote {args.out}")
    return 1 if failed else 0


def print_table(results: dict) -> None:
    print(f"\n{'suite':<22} {'benchmark':<48} {'value':>12} {'unit':<10} {'baseline':>12} {'ratio':>7}")
    for suite, data in results["suites"].items():
        for row in data["rows"]:
            value = row.get("value")
            baseline = row.get("baseline")
            ratio = row.get("ratio")
            print(
                f"{suite.removeprefix('bench_'):<22} {row['name']:<48} "
                f"{_fmt(value):>12} {row.get('unit', ''):<10} {_fmt(baseline):>12} {_fmt(ratio):>7}"
            )


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
