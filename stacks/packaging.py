"""Build deployable folders and archives without Docker: Lambda staging folders, the Glue zip of `returnguard/`."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
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
    """`lambdas/<name>/` + `returnguard/` copied into `build/assets/<name>-<digest>/` (see _settle), plus
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
    ASSETS.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=ASSETS))
    try:
        shutil.copytree(source, staging, ignore=_IGNORE, dirs_exist_ok=True)
        shutil.copytree(DOMAIN, staging / "returnguard", ignore=_IGNORE)
        for package in packages:
            shutil.copytree(ROOT / package, staging / package, ignore=_IGNORE)
        for package in vendor:
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                raise ModuleNotFoundError(f"{package} is not installed here: run `make setup`")
            location = Path(next(iter(spec.submodule_search_locations)))
            compiled = [p.name for p in location.rglob("*") if p.suffix in (".so", ".pyd", ".dylib")]
            if compiled:
                raise ValueError(f"{package} is not pure Python ({compiled[:3]}): it cannot be vendored")
            shutil.copytree(location, staging / package, ignore=_IGNORE)
        for file_name, source_file in (files or {}).items():
            shutil.copyfile(source_file, staging / file_name)
        return _settle(staging, name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


_STALE_SECONDS = 3600.0


def _settle(staging: Path, name: str) -> Path:
    """The staged folder under its content's name, `build/assets/<name>-<digest>/`, never changed once
    there: two synths at once (the test suite's workers, two terminals) each read a whole folder, where
    rebuilding one folder in place let one synth copy files the other had just deleted. Folders of
    this function older than an hour with other contents are removed."""
    digest = hashlib.sha256()
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(staging)).encode() + b"\0" + path.read_bytes() + b"\0")
    target = ASSETS / f"{name}-{digest.hexdigest()[:16]}"
    try:
        staging.rename(target)
    except OSError:
        if not (target / "handler.py").is_file():  # not another synth's identical folder: a real error
            raise
    os.utime(target)  # in use now (copytree gave it the source folder's time): not stale for an hour
    now = time.time()
    for other in ASSETS.glob(f"{name}-*"):
        suffix = other.name[len(name) + 1 :]
        if other != target and len(suffix) == 16 and now - other.stat().st_mtime > _STALE_SECONDS:
            shutil.rmtree(other, ignore_errors=True)
    return target


def _write_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """`write` fills a temporary file beside `target`, which then replaces it in one rename: a reader
    (another synth) sees the old file or the new one, never half of one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def domain_zip() -> Path:
    """`returnguard/` and `glue_jobs/` (the feature job imports its return-lane module) as a zip for Glue
    `--extra-py-files` (deterministic member order and times)."""
    sources = (*DOMAIN.rglob("*.py"), *(ROOT / "glue_jobs").glob("*.py"))
    files = sorted(p for p in sources if "__pycache__" not in p.parts)
    return _write_atomically(ASSETS / "glue" / "returnguard.zip", lambda path: _zip(path, files))


def _zip(path: Path, files: list[Path]) -> None:
    """The files under their paths in this repository, in the given order, with fixed times."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            info = zipfile.ZipInfo(str(file.relative_to(ROOT)), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, file.read_bytes())


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
    files = sorted(
        p for package in packages for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts
    )
    return _write_atomically(ASSETS / "glue" / f"{'-'.join(packages)}.zip", lambda path: _zip(path, files))
