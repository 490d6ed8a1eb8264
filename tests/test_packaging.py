"""The wheel must contain every package, and the repo root must not leak as ``core`` or ``ctl``."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def declared_packages() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(data["tool"]["setuptools"]["packages"])


def folder_packages() -> set[str]:
    mapping = {"core": "btd.core", "ctl": "btd.ctl", "plugins": "btd.plugins"}
    found = set()
    for folder, dotted in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([dotted, *rel.parts]))
    return found


def test_declared_packages_equal_folders_with_init() -> None:
    assert declared_packages() == folder_packages()


def test_package_dir_mapping() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["tool"]["setuptools"]["package-dir"] == {
        "btd.core": "core",
        "btd.ctl": "ctl",
        "btd.plugins": "plugins",
    }
    assert data["project"]["scripts"] == {
        "btd": "btd.core.daemon:main",
        "btctl": "btd.ctl.main:main",
    }


@pytest.mark.parametrize("folder", ["core", "ctl", "plugins"])
def test_bare_folder_is_not_importable(tmp_path: Path, folder: str) -> None:
    probe = (
        "import importlib.util, sys; "
        f"sys.exit(0 if importlib.util.find_spec({folder!r}) is None else 1)"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path)
    assert result.returncode == 0, f"a top-level {folder!r} package is importable"


def test_btd_core_imports() -> None:
    import btd.core
    import btd.ctl
    import btd.plugins

    assert Path(btd.core.__file__).parent == ROOT / "core"
    assert Path(btd.ctl.__file__).parent == ROOT / "ctl"
    assert Path(btd.plugins.__file__).parent == ROOT / "plugins"


def test_py_typed_markers() -> None:
    assert (ROOT / "core" / "py.typed").exists()
    assert (ROOT / "ctl" / "py.typed").exists()
    assert (ROOT / "plugins" / "py.typed").exists()


def test_no_committed_wheels() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "*.whl"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    assert listed.stdout == ""


def test_no_tests_package() -> None:
    assert not (ROOT / "tests" / "__init__.py").exists()


def test_web_ui_files_are_package_data() -> None:
    """The web UI's files (no __init__.py in web/) ship only through package-data."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = data["tool"]["setuptools"]["package-data"]["btd.plugins.http"]
    web = ROOT / "plugins" / "http" / "web"
    files = sorted(p.name for p in web.iterdir())
    assert files and all(any((web / f).match(g) for g in globs) for f in files)


def test_wheel_contains_the_web_ui(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("btd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    web = ROOT / "plugins" / "http" / "web"
    for f in web.iterdir():
        assert f"btd/plugins/http/web/{f.name}" in names
    assert "btd/plugins/http/ui.py" in names
