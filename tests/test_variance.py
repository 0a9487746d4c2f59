"""Variance components of a splits × initialisations grid: exact decomposition, estimates, intervals."""

import json

import jax
import numpy as np
import pytest
from numpy.testing import assert_allclose

from gophernet_jax.config import DATA_DIR
from gophernet_jax.model import Sizes, accuracy, init_params, loss
from gophernet_jax.splits import load_table, make_splits
from gophernet_jax.variance import SOURCES, TIE_MARGIN, format_variance, variance_components


def grid(split_sd: float, init_sd: float, noise_sd: float, shape=(8, 10), seed: int = 0) -> np.ndarray:
    """acc[s, j] = 0.9 + split effect + init effect + interaction noise."""
    rng = np.random.default_rng(seed)
    splits, inits = shape
    return (
        0.9
        + rng.normal(0, split_sd, (splits, 1))
        + rng.normal(0, init_sd, (1, inits))
        + rng.normal(0, noise_sd, (splits, inits))
    )


def manual_sums_of_squares(acc: np.ndarray) -> tuple[float, float, float]:
    """The textbook formulas, written with loops, to check the vectorised ones."""
    splits, inits = acc.shape
    mean = acc.mean()
    row = [acc[s].mean() for s in range(splits)]
    col = [acc[:, j].mean() for j in range(inits)]
    ss_split = sum(inits * (r - mean) ** 2 for r in row)
    ss_init = sum(splits * (c - mean) ** 2 for c in col)
    ss_inter = sum((acc[s, j] - row[s] - col[j] + mean) ** 2 for s in range(splits) for j in range(inits))
    return ss_split, ss_init, ss_inter


def parts(report: dict, key: str) -> np.ndarray:
    return np.array([report["sources"][s][key] for s in SOURCES], dtype=float)


@pytest.mark.parametrize(
    "sds, dominant",
    [((0.05, 0.01, 0.003), "split"), ((0.01, 0.05, 0.003), "init"), ((0, 0, 0.02), "interaction")],
)
def test_the_dominant_source_is_found(sds, dominant):
    report = variance_components(grid(*sds))
    assert report["dominant"] == dominant
    words = {"split": "the split", "init": "initialisation", "interaction": "their interaction"}
    assert report["sentence"].endswith(f"{words[dominant]} dominates.")
    assert report["sentence"].count(".") == 1  # one sentence (shares print as whole percents)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parts_add_up_to_the_grid_variance(seed):
    acc = grid(0.03, 0.02, 0.01, shape=(7, 9), seed=seed)
    report = variance_components(acc)
    assert abs(parts(report, "variance").sum() - np.var(acc, ddof=1)) < 1e-12
    assert report["total_variance"] == pytest.approx(np.var(acc, ddof=1), rel=1e-12)
    assert parts(report, "share").sum() == pytest.approx(1.0, abs=1e-12)
    assert_allclose(parts(report, "ss"), manual_sums_of_squares(acc), rtol=1e-10)
    assert [report["sources"][s]["df"] for s in SOURCES] == [6, 8, 48]


def test_random_effects_estimates_recover_known_components():
    acc = grid(0.04, 0.02, 0.01, shape=(80, 80), seed=4)
    components = parts(variance_components(acc, resamples=200), "component")
    assert_allclose(components, [0.04**2, 0.02**2, 0.01**2], rtol=0.4)


def test_random_effects_match_the_mean_squares():
    acc = grid(0.03, 0.02, 0.01, shape=(5, 6), seed=3)
    ss_split, ss_init, ss_inter = manual_sums_of_squares(acc)
    ms_split, ms_init, ms_resid = ss_split / 4, ss_init / 5, ss_inter / 20
    expected = [(ms_split - ms_resid) / 6, (ms_init - ms_resid) / 5, ms_resid]
    assert_allclose(parts(variance_components(acc), "component"), np.maximum(expected, 0), rtol=1e-10)


def test_negative_estimates_are_clipped_and_flagged():
    # A checkerboard: every row and column has the same mean, all variation is interaction.
    acc = 0.9 + 0.02 * (-1.0) ** np.add.outer(np.arange(4), np.arange(6)) + grid(0, 0, 1e-4, (4, 6))
    report = variance_components(acc)
    for source in ("split", "init"):
        assert report["sources"][source]["clipped"] and report["sources"][source]["component"] == 0.0
    assert not report["sources"]["interaction"]["clipped"]
    assert "clipped at 0" in format_variance(report)


def test_bootstrap_intervals_hold_the_estimates_and_follow_their_seed():
    acc = grid(0.03, 0.015, 0.01, shape=(8, 10), seed=5)
    report = variance_components(acc, seed=1)
    for source in SOURCES:
        s = report["sources"][source]
        for key in ("share", "variance", "component", "component_share"):
            low, high = s[f"{key}_ci95"]
            assert low <= s[key] <= high, (source, key)
            assert low < high
    again, other = variance_components(acc, seed=1), variance_components(acc, seed=2)
    assert again["sources"] == report["sources"]
    assert other["sources"]["split"]["share_ci95"] != report["sources"]["split"]["share_ci95"]


@pytest.mark.parametrize("source, axis", [("split", 0), ("init", 1)])
def test_bootstrap_resamples_each_factor(source, axis):
    # One factor only: its variance moves only if its own levels are resampled.
    acc = 0.9 + np.expand_dims(np.linspace(-0.05, 0.05, 6), 1 - axis) + np.zeros((6, 6))
    low, high = variance_components(acc)["sources"][source]["variance_ci95"]
    assert low < high


def test_wider_level_gives_wider_intervals():
    acc = grid(0.03, 0.015, 0.01, seed=6)
    narrow = variance_components(acc, level=0.5)["sources"]["split"]["share_ci95"]
    wide = variance_components(acc, level=0.99)["sources"]["split"]["share_ci95"]
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


@pytest.mark.parametrize("value", [1.0, 0.1, 29 / 30])
def test_a_grid_without_variance(value):
    report = variance_components(np.full((7, 3), value))
    assert report["total_variance"] == 0.0 and report["dominant"] is None
    assert all(report["sources"][s]["share"] is None for s in SOURCES)
    assert all(report["sources"][s]["variance"] == 0.0 for s in SOURCES)
    assert "no variance to attribute" in report["sentence"]
    assert "no variance to attribute" in format_variance(report)
    json.dumps(report)


@pytest.mark.parametrize("shape", [(1, 5), (5, 1), (6,), (2, 2, 2)])
def test_the_grid_needs_two_levels_of_each(shape):
    with pytest.raises(ValueError, match="at least 2 of each"):
        variance_components(np.ones(shape))


def test_non_finite_accuracies_are_refused():
    acc = grid(0.01, 0.01, 0.01)
    acc[2, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        variance_components(acc)


def test_close_shares_are_reported_as_sharing_the_lead():
    effect = np.linspace(-0.05, 0.05, 8)
    acc = 0.9 + effect[:, None] + 0.97 * effect[None, :]  # split 51%, init 49%, no interaction
    report = variance_components(acc)
    split, init = (report["sources"][s]["share"] for s in ("split", "init"))
    assert abs(split - init) < TIE_MARGIN  # built to be close: a check on the check
    assert "the split and initialisation share the lead" in report["sentence"] or (
        "initialisation and the split share the lead" in report["sentence"]
    )


def test_report_is_json_and_formats_as_a_table():
    report = variance_components(grid(0.05, 0.01, 0.003))
    assert json.loads(json.dumps(report))["dominant"] == "split"
    text = format_variance(report)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["source", "variance", "share"]
    assert [line.split()[0] for line in lines[2:6]] == [*SOURCES, "total"]
    assert report["sentence"] in text
    assert f"{report['sources']['split']['share']:.1%}" in text


def _iris_grid(splits: int, inits: int, epochs: int) -> np.ndarray:
    """Test accuracy of the 4-3-3 net, gradient descent on the summed loss, for each pair."""
    table = load_table(DATA_DIR / "iris.csv", "species")
    data = make_splits(table, jax.random.split(jax.random.key(0), splits))
    init_keys = jax.random.split(jax.random.key(1), inits)

    def one(split, key):
        x_train, y_train, x_test, y_test = split[:4]

        def step(_, p):
            return jax.tree.map(lambda w, g: w - 0.3 * g, p, jax.grad(loss)(p, x_train, y_train))

        params = jax.lax.fori_loop(0, epochs, step, init_params(key, Sizes(4, 3, 3)))
        return accuracy(params, x_test, y_test)

    per_split = jax.vmap(lambda split: jax.vmap(lambda key: one(split, key))(init_keys))
    return np.asarray(jax.jit(per_split)(data), dtype=np.float64)


def test_iris_grid_components_add_up_and_name_the_dominant_source():
    acc = _iris_grid(splits=6, inits=6, epochs=300)
    assert acc.shape == (6, 6) and np.ptp(acc) > 0
    report = variance_components(acc)
    assert abs(parts(report, "variance").sum() - np.var(acc, ddof=1)) < 1e-12
    assert report["dominant"] in SOURCES
    assert report["sentence"].startswith("On this grid of 6 splits × 6 initialisations")
    words = {"split": "the split", "init": "initialisation", "interaction": "their interaction"}
    verdict = report["sentence"].split(": ", 1)[1]
    assert verdict.startswith(f"{words[report['dominant']]} dominates") or " share the lead" in verdict
