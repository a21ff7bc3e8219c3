"""Lambda staging folders and Glue zips stay whole while another synth builds them at the same time
(make test's two workers synthesize at once; a user may run two `cdk synth`s)."""

from __future__ import annotations

import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from stacks import packaging


def test_a_folder_handed_out_is_never_changed_by_a_later_build(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(packaging, "ASSETS", tmp_path / "assets")
    first = packaging.lambda_staging_folder("drift")
    listing = sorted(str(p.relative_to(first)) for p in first.rglob("*"))
    extra = tmp_path / "model.json"
    extra.write_text("{}")
    # a build with other contents (another model's fallback file) while the first is being read
    second = packaging.lambda_staging_folder("drift", files={"model.json": extra})
    assert second != first and (second / "model.json").is_file()
    assert sorted(str(p.relative_to(first)) for p in first.rglob("*")) == listing  # rebuilt in place before
    assert packaging.lambda_staging_folder("drift") == first  # the same contents: the same folder


def test_builds_at_once_each_get_the_whole_folder_and_leave_no_staging(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(packaging, "ASSETS", tmp_path / "assets")
    with ThreadPoolExecutor(4) as pool:
        folders = list(pool.map(lambda _: packaging.lambda_staging_folder("drift"), range(4)))
    (folder,) = set(folders)
    assert (folder / "handler.py").is_file() and (folder / "returnguard" / "gate.py").is_file()
    assert [p.name for p in (tmp_path / "assets").iterdir()] == [folder.name]  # no half-built leftovers


def test_a_zip_is_replaced_whole(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(packaging, "ASSETS", tmp_path / "assets")
    with ThreadPoolExecutor(4) as pool:
        zips = set(pool.map(lambda _: packaging.domain_zip(), range(3)))
    (built,) = zips
    with zipfile.ZipFile(built) as archive:
        assert archive.testzip() is None and "returnguard/features.py" in archive.namelist()
    assert [p.name for p in Path(tmp_path / "assets" / "glue").iterdir()] == ["returnguard.zip"]
