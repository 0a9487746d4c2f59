"""The wheel carries the configs and data: installed from it, the CLI runs from any folder."""

import os
import zipfile
from pathlib import Path

import pytest

from conftest import assert_ok, command

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    assert_ok(command("-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out, ROOT, cwd=out))
    (path,) = out.glob("gophernet_jax-*.whl")
    return path


@pytest.mark.slow
def test_wheel_carries_configs_and_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ["conf/config.yaml", "conf/sweep/seeds.yaml", "data/train.csv", "data/test.csv",
                    "data/iris.csv", "data/wine.csv", "data/digits.csv", "data/README.md",
                    "conf/data/digits.yaml"]:  # fmt: skip
        assert f"gophernet_jax/{shipped}" in names


@pytest.mark.slow
def test_wheel_carries_the_sweeper_plugin_in_hydras_namespace_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    plugin = "hydra_plugins/gophernet_optuna_sweeper"
    for module in ("__init__", "config", "gophernet_optuna_sweeper", "_search", "missing_extras"):
        assert f"{plugin}/{module}.py" in names
    # A namespace package: an __init__.py here would hide the other plugins' hydra_plugins.
    assert "hydra_plugins/__init__.py" not in names


@pytest.mark.slow
def test_installed_wheel_runs_from_another_folder(wheel, tmp_path):
    site = tmp_path / "site"
    assert_ok(command("-m", "pip", "install", "--no-deps", "--quiet", "--target", site, wheel, cwd=tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = "import gophernet_jax.config as c; print(c.CONF_DIR); print(c.DATA_DIR)"
    dirs = command("-c", code, cwd=elsewhere, env=env)
    assert dirs.stdout.split() == [str(site / "gophernet_jax" / "conf"), str(site / "gophernet_jax" / "data")]
    # A process of its own: PYTHONPATH finds the installed wheel, not this checkout.
    run = command(
        "-m", "gophernet_jax", "train.epochs=5", f"hydra.run.dir={tmp_path / 'run'}", cwd=elsewhere, env=env
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("Accuracy = ")
    assert (tmp_path / "run" / "results.csv").is_file()
