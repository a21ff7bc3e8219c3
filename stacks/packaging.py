"""Build deployable folders and archives without Docker: Lambda staging folders, the Glue zip of `returnguard/`."""

from __future__ import annotations

import importlib.util
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path

from stacks.config import ROOT

ASSETS = ROOT / "build" / "assets"
DOMAIN = ROOT / "returnguard"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", "tests")


def lambda_staging_folder(
    name: str,
    vendor: tuple[str, ...] = (),
    files: Mapping[str, Path] | None = None,
    packages: tuple[str, ...] = (),
) -> Path:
    """`lambdas/<name>/` + `returnguard/` copied into `build/assets/<name>/` (rebuilt each synth), plus
    `files` (name in the folder → source file), e.g. the score function's fallback model, and
    `packages`: other folders of this repository the function imports (the batch engine).

    `vendor` names pure-Python packages the function needs beyond the runtime and the Powertools
    layer; they are copied from this environment (the versions uv.lock pins), so no Docker build
    is needed. A package with compiled files is refused: it would have to match Lambda's platform.
    """
    source = ROOT / "lambdas" / name
    if not (source / "handler.py").is_file():
        raise FileNotFoundError(
            f"{source / 'handler.py'} is missing: every function folder needs a handler.py"
        )
    target = ASSETS / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=_IGNORE)
    shutil.copytree(DOMAIN, target / "returnguard", ignore=_IGNORE)
    for package in packages:
        shutil.copytree(ROOT / package, target / package, ignore=_IGNORE)
    for package in vendor:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(f"{package} is not installed here: run `make setup`")
        location = Path(next(iter(spec.submodule_search_locations)))
        compiled = [p.name for p in location.rglob("*") if p.suffix in (".so", ".pyd", ".dylib")]
        if compiled:
            raise ValueError(f"{package} is not pure Python ({compiled[:3]}): it cannot be vendored")
        shutil.copytree(location, target / package, ignore=_IGNORE)
    for file_name, source_file in (files or {}).items():
        shutil.copyfile(source_file, target / file_name)
    return target


def domain_zip() -> Path:
    """`returnguard/` and `glue_jobs/` (the feature job imports its return-lane module) as a zip for Glue
    `--extra-py-files` (deterministic member order and times)."""
    target = ASSETS / "glue" / "returnguard.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    sources = (*DOMAIN.rglob("*.py"), *(ROOT / "glue_jobs").glob("*.py"))
    files = sorted(p for p in sources if "__pycache__" not in p.parts)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            info = zipfile.ZipInfo(str(path.relative_to(ROOT)), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return target


def glue_script(name: str) -> tuple[Path, bool]:
    """The Glue job script `glue_jobs/<name>`; a failing stub if it is not written yet (second value False)."""
    script = ROOT / "glue_jobs" / name
    if script.is_file():
        return script, True
    stub = ASSETS / "glue" / "pending" / name
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text(
        f'raise SystemExit("glue_jobs/{name} was not in the checkout when this stack was synthesized")\n'
    )
    return stub, False


def packages_zip(packages: tuple[str, ...]) -> Path:
    """Folders of this repository (e.g. `returnguard/` and `batch/`) as one zip for a Glue job's
    `--extra-py-files` (deterministic member order and times)."""
    target = ASSETS / "glue" / f"{'-'.join(packages)}.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(
        p for package in packages for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts
    )
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            info = zipfile.ZipInfo(str(path.relative_to(ROOT)), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return target
