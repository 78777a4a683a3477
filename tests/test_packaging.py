"""What a non-editable install needs: the default mapping files and the commented config ship as
package data (one content with the repository's copies), and the config falls back to them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from connector.config import Config, HubSpotSettings, MappingPaths, SalesforceSettings
from connector.defaults import CONFIG_EXAMPLE, DEFAULT_MAPPINGS, DEFAULTS_DIR

ROOT = Path(__file__).resolve().parents[1]
# The repository's copies an admin edits in a checkout, and their shipped twins.
TWINS = {ROOT / "config.example.toml": CONFIG_EXAMPLE,
         **{ROOT / "mappings" / f"{name}.toml": path for name, path in DEFAULT_MAPPINGS.items()}}


def test_the_shipped_defaults_are_the_repository_files() -> None:
    assert set(DEFAULT_MAPPINGS) == {"fields", "scoring", "routing", "sla"}
    for repo, shipped in TWINS.items():
        assert shipped.read_bytes() == repo.read_bytes(), (
            f"{shipped.relative_to(ROOT)} differs from {repo.relative_to(ROOT)}: the wheel would "
            f"ship another default than the checkout's. Fix: cp {repo.relative_to(ROOT)} "
            f"{DEFAULTS_DIR.relative_to(ROOT)}/")


def _config(tmp_path: Path, mappings: MappingPaths | None = None) -> Config:
    config = Config(hubspot=HubSpotSettings(),
                    salesforce=SalesforceSettings(instance_url="https://example.my.salesforce.com"),
                    **({"mappings": mappings} if mappings is not None else {}))
    return config.model_copy(update={"source": str(tmp_path / "handshake.toml")})


def test_with_no_mappings_configured_or_beside_the_config_the_shipped_ones_are_used(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    for name, shipped in DEFAULT_MAPPINGS.items():
        assert config.mapping_path(name) == shipped
    assert config.mapping_path("lifecycle") == tmp_path / "mappings" / "lifecycle.toml"


def test_a_mappings_folder_beside_the_config_wins_over_the_shipped_files(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir()
    config = _config(tmp_path)
    assert config.mapping_path("fields") == tmp_path / "mappings" / "fields.toml"


def test_a_configured_mapping_path_is_used_even_when_missing(tmp_path: Path) -> None:
    """A path the admin wrote is theirs: a missing file is reported, never replaced."""
    config = _config(tmp_path, MappingPaths(fields="mine/fields.toml"))
    assert config.mapping_path("fields") == tmp_path / "mine" / "fields.toml"
    assert config.mapping_path("scoring") == DEFAULT_MAPPINGS["scoring"]


@pytest.mark.slow
def test_the_wheel_ships_the_defaults_and_the_console_script(tmp_path: Path) -> None:
    """Built from a copy of the sources, so the checkout gets no build/ or egg-info."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "connector", source / "connector",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(tmp_path / "dist"), str(source)],
                           capture_output=True, text=True, timeout=600, check=False)
    if built.returncode != 0 and "No matching distribution found" in built.stderr:
        pytest.skip("the build backend (setuptools) cannot be installed: no package index")
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("handshake_connector-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for repo, shipped in TWINS.items():
            member = f"connector/defaults/{shipped.name}"
            assert member in names, f"{member} is not in the wheel"
            assert archive.read(member) == repo.read_bytes()
        assert "connector/store/migrations/env.py" in names
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "handshake = connector.cli:main" in archive.read(entry_points).decode()
