"""The wheel a user installs holds every package of the repository and the shipped configs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _top_level_packages() -> set[str]:
    return {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}


@pytest.mark.slow
def test_wheel_holds_every_package_and_the_configs(tmp_path):
    # Built from a copy, so the build's own leftovers (build/, *.egg-info) never land in the checkout.
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "build", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", "*.png"))
    out = tmp_path / "wheel"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = out.glob("tailor-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    assert _top_level_packages() <= packages, f"missing from the wheel: {_top_level_packages() - packages}"
    assert "tests" not in packages
    shipped = {n for n in names if n.startswith("configs/") and n.endswith(".yaml")}
    in_repo = {str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml")}
    assert in_repo and in_repo <= shipped, f"configs missing from the wheel: {sorted(in_repo - shipped)[:5]}"


def test_documented_config_paths_resolve_without_a_clone(tmp_path, monkeypatch):
    from core.config import config_path

    monkeypatch.chdir(tmp_path)  # outside the repository, as after `pip install tailor-*.whl`
    p = config_path("configs/spry/laptop.yaml")
    assert p.is_file() and p.parent.name == "spry"
    assert config_path("configs/spry/no-such.yaml") == Path("configs/spry/no-such.yaml")
