"""Shared fixtures: the article's data, strict dtype promotion as in Equinox's tests."""

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np
import pytest

from gophernet_jax import load_split, runtime
from gophernet_jax.config import DATA_DIR, RuntimeConfig

# Every CLI run of the suite (subprocesses inherit the environment) shares one compilation
# cache made for this session: the suite neither reads nor fills the user's own cache
# (`runtime.compilation_cache=auto`), and a shape compiled once loads in later runs.
os.environ["XDG_CACHE_HOME"] = _CACHE = tempfile.mkdtemp(prefix="gophernet-jax-test-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
# The tests' own process uses that cache too, as the CLI does: a program compiled by one
# test (in a subprocess or here) loads in the others.
runtime.configure(ynn_fusion=False, compilation_cache=RuntimeConfig().cache_folder())


@pytest.fixture(scope="session")
def article_data():
    """The article's train.csv and test.csv, without the padding row."""
    return load_split(DATA_DIR / "train.csv", DATA_DIR / "test.csv")


@pytest.fixture(scope="session")
def padded_data():
    """The same files as the reference loader reads them: one extra all-zero row each."""
    return load_split(DATA_DIR / "train.csv", DATA_DIR / "test.csv", padding_row=True)


@pytest.fixture
def x64():
    """Computes in float64 for the duration of one test."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True)
def strict_promotion():
    """Fail on silent dtype promotion inside the library."""
    with jax.numpy_dtype_promotion("strict"):
        yield


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def strict_json(path) -> dict:
    """Reads a JSON file as a strict parser would: NaN and Infinity are not JSON (Python's
    `json.loads` accepts them unless told otherwise)."""

    def refuse(name: str):
        raise ValueError(f"{path}: {name} is not JSON")

    return json.loads(Path(path).read_text(), parse_constant=refuse)


def settings_of(*overrides: str):
    """The validated config that `python -m gophernet_jax OVERRIDES` would run."""
    from hydra import compose, initialize_config_dir

    from gophernet_jax.config import CONF_DIR, register, validate

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return validate(compose(config_name="config", overrides=list(overrides)))


def run_job(folder: Path, *overrides: str, job_num: int | None = None) -> dict:
    """The CLI's job, in this process (no start-up, and programs compiled once per worker):
    trains, scores and writes `folder` as `python -m gophernet_jax` would. Returns the
    summary document (summary.json). With `job_num`, the folder is laid out as a multirun's
    job, for a sweep report."""
    from gophernet_jax import job

    folder.mkdir(parents=True, exist_ok=True)
    if job_num is not None:
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    return job.job(settings_of(*overrides), folder, job_num=job_num).to_json()


def synthetic_table(path: Path, rows: int = 100_000, features: int = 10, *, seed: int = 0) -> Path:
    """Writes a raw table of `rows` random features in [0, 1) (full float precision, about
    20 MB at the defaults) and a `class` column of three classes, a simple function of the
    features: the tercile of the first two features' sum. For timing the loader."""
    x = np.random.default_rng(seed).random((rows, features))
    labels = np.digitize(x[:, 0] + x[:, 1], [2 / 3, 4 / 3])
    names = np.array(["c0", "c1", "c2"])[labels]
    header = ",".join([*(f"f{i}" for i in range(features)), "class"])
    body = "\n".join(",".join([*map(repr, row.tolist()), name]) for row, name in zip(x, names))
    Path(path).write_text(f"{header}\n{body}\n")
    return Path(path)
