"""Shared fixtures: the article's data, strict dtype promotion as in Equinox's tests."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from gophernet_jax import load_split
from gophernet_jax.config import DATA_DIR


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
