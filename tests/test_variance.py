"""Variance components of a full factorial grid: exact decomposition, estimates, intervals, figure."""

import itertools
import json
import tracemalloc

import jax
import matplotlib.image
import numpy as np
import pytest
from numpy.testing import assert_allclose

from gophernet_jax import variance
from gophernet_jax.config import DATA_DIR
from gophernet_jax.model import Sizes, accuracy, init_params, loss
from gophernet_jax.plots import plot_variance
from gophernet_jax.splits import load_table, make_splits
from gophernet_jax.variance import TIE_MARGIN, format_variance, variance_components

TWO_WAY = ("split", "init", "split×init")
THREE = ("split", "init", "order")
THREE_WAY = ("split", "init", "order", "split×init", "split×order", "init×order", "split×init×order")


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


def random_effects_grid(sds: dict, shape: tuple, seed: int = 0, batch: tuple = ()) -> np.ndarray:
    """0.9 + one normal effect per subset of axes (keys are tuples of axes), each with its sd."""
    rng = np.random.default_rng(seed)
    acc = np.full(batch + shape, 0.9)
    for axes, sd in sds.items():
        acc = acc + rng.normal(0, sd, batch + tuple(n if a in axes else 1 for a, n in enumerate(shape)))
    return acc


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


def textbook_three_way(acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SS and random-effects σ² of a three-way design written out term by term."""
    a, b, c = acc.shape
    m = acc.mean()
    mi, mj, mk = acc.mean((1, 2)), acc.mean((0, 2)), acc.mean((0, 1))
    mij, mik, mjk = acc.mean(2), acc.mean(1), acc.mean(0)
    ss = [
        b * c * ((mi - m) ** 2).sum(),
        a * c * ((mj - m) ** 2).sum(),
        a * b * ((mk - m) ** 2).sum(),
        c * ((mij - mi[:, None] - mj[None, :] + m) ** 2).sum(),
        b * ((mik - mi[:, None] - mk[None, :] + m) ** 2).sum(),
        a * ((mjk - mj[:, None] - mk[None, :] + m) ** 2).sum(),
        (
            (
                acc
                - mij[:, :, None]
                - mik[:, None, :]
                - mjk[None]
                + mi[:, None, None]
                + mj[None, :, None]
                + mk[None, None, :]
                - m
            )
            ** 2
        ).sum(),
    ]
    df = [a - 1, b - 1, c - 1, (a - 1) * (b - 1), (a - 1) * (c - 1), (b - 1) * (c - 1)]
    df.append((a - 1) * (b - 1) * (c - 1))
    ms_a, ms_b, ms_c, ms_ab, ms_ac, ms_bc, ms_abc = np.array(ss) / df
    sigma2 = [
        (ms_a - ms_ab - ms_ac + ms_abc) / (b * c),
        (ms_b - ms_ab - ms_bc + ms_abc) / (a * c),
        (ms_c - ms_ac - ms_bc + ms_abc) / (a * b),
        (ms_ab - ms_abc) / c,
        (ms_ac - ms_abc) / b,
        (ms_bc - ms_abc) / a,
        ms_abc,
    ]
    return np.array(ss), np.array(sigma2)


def parts(report: dict, key: str) -> np.ndarray:
    return np.array([effect[key] for effect in report["effects"].values()], dtype=float)


# Today's two-way implementation (before the generalisation), kept to check that the
# general one gives exactly its numbers.
def _old_sums_of_squares(acc):
    mean = acc.mean(axis=(-2, -1), keepdims=True)
    rows, cols = acc.mean(axis=-1, keepdims=True), acc.mean(axis=-2, keepdims=True)
    splits, inits = acc.shape[-2:]
    ss_split = inits * ((rows - mean) ** 2).sum(axis=(-2, -1))
    ss_init = splits * ((cols - mean) ** 2).sum(axis=(-2, -1))
    ss_inter = ((acc - rows - cols + mean) ** 2).sum(axis=(-2, -1))
    constant = acc.max(axis=(-2, -1)) == acc.min(axis=(-2, -1))
    return np.where(constant[..., None], 0.0, np.stack([ss_split, ss_init, ss_inter], axis=-1))


def _old_components(ss, splits, inits):
    ms = ss / np.array([splits - 1, inits - 1, (splits - 1) * (inits - 1)])
    ms_resid = ms[..., 2]
    raw = np.stack([(ms[..., 0] - ms_resid) / inits, (ms[..., 1] - ms_resid) / splits, ms_resid], axis=-1)
    return np.maximum(raw, 0.0), raw


def _old_report(acc, level, resamples, seed):
    splits, inits = acc.shape
    ss = _old_sums_of_squares(acc)
    components, raw = _old_components(ss, splits, inits)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, splits, (resamples, splits))
    cols = rng.integers(0, inits, (resamples, inits))
    boot_ss = _old_sums_of_squares(acc[rows[:, :, None], cols[:, None, :]])
    boot_components, _ = _old_components(boot_ss, splits, inits)
    boot = {
        "variance": boot_ss / (acc.size - 1),
        "share": variance._shares(boot_ss),
        "component": boot_components,
        "component_share": variance._shares(boot_components),
    }
    point = {
        "ss": ss,
        "variance": ss / (acc.size - 1),
        "share": variance._shares(ss),
        "component": components,
        "component_share": variance._shares(components),
    }
    return {
        name: {"clipped": bool(raw[i] < 0), "df": [splits - 1, inits - 1, (splits - 1) * (inits - 1)][i]}
        | {key: float(value[i]) for key, value in point.items()}
        | {f"{key}_ci95": variance._interval(value[:, i], level) for key, value in boot.items()}
        for i, name in enumerate(TWO_WAY)
    }


@pytest.mark.parametrize("batch_bytes", [variance.BATCH_BYTES, 1, 8 * 5 * 80 * 7])
@pytest.mark.parametrize("shape, seed", [((8, 10), 1), ((2, 2), 0), ((5, 37), 2), ((30, 3), 3)])
def test_two_way_numbers_are_exactly_todays(monkeypatch, batch_bytes, shape, seed):
    monkeypatch.setattr(variance, "BATCH_BYTES", batch_bytes)  # one resample per batch, some, or all
    acc = np.round(grid(0.03, 0.015, 0.01, shape=shape, seed=seed), 2 if seed == 3 else 12)
    report = variance_components(acc, seed=seed, resamples=500)
    assert report["effects"] == _old_report(acc, 0.95, 500, seed)


def test_two_way_numbers_match_the_ones_recorded_before_the_generalisation():
    report = variance_components(grid(0.03, 0.015, 0.01, shape=(8, 10), seed=5), seed=1)
    split = report["effects"]["split"]
    assert split["share"] == pytest.approx(0.6522220564723681, rel=1e-12)
    assert_allclose(split["share_ci95"], [0.27813277916925844, 0.8256912432939714], rtol=1e-12)
    assert_allclose(
        report["effects"]["split×init"]["component_ci95"],
        [2.792541727009817e-05, 8.204872841585653e-05],
        rtol=1e-12,
    )


@pytest.mark.parametrize(
    "sds, dominant",
    [((0.05, 0.01, 0.003), "split"), ((0.01, 0.05, 0.003), "init"), ((0, 0, 0.02), "split×init")],
)
def test_the_dominant_source_is_found(sds, dominant):
    report = variance_components(grid(*sds))
    assert report["dominant"] == dominant
    words = {"split": "the split", "init": "initialisation", "split×init": "the split×init interaction"}
    assert report["sentence"].endswith(f"{words[dominant]} dominates.")
    assert report["sentence"].count(".") == 1  # one sentence (shares print as whole percents)
    lead = report["lead"]
    assert lead["first"] == dominant and lead["verdict"] == "dominates"
    assert lead["difference_ci95"][0] > 0  # "dominates" only where the bootstrap confirms the lead


@pytest.mark.parametrize("seed", [1, 3, 4])
def test_a_lead_the_bootstrap_does_not_confirm_is_not_called_dominant(seed):
    # 3 splits: a resample that draws one split three times has no split effect at all, so the
    # split's share can lead by far on the grid and still be 0 in a ninth of the resamples.
    report = variance_components(grid(0.03, 0.002, 0.01, shape=(3, 40), seed=seed))
    lead, shares = report["lead"], {name: e["share"] for name, e in report["effects"].items()}
    assert lead["first"] == report["dominant"] == "split" and lead["second"] == "split×init"
    assert lead["difference"] == pytest.approx(shares["split"] - shares["split×init"], abs=1e-12)
    assert lead["difference"] > TIE_MARGIN and lead["verdict"] == "unconfirmed"
    low, high = lead["difference_ci95"]
    assert low <= 0 < high
    assert "dominates" not in report["sentence"]
    assert report["sentence"].endswith(
        f"the split leads, though not clearly (the 95% interval of its share minus the split×init "
        f"interaction's, [{low:.0%}, {high:.0%}], holds 0)."
    )
    assert "-0%" not in report["sentence"]  # a resample with both shares 0 differs by rounding only


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_way_parts_add_up_to_the_grid_variance(seed):
    acc = grid(0.03, 0.02, 0.01, shape=(7, 9), seed=seed)
    report = variance_components(acc, resamples=100)
    assert list(report["effects"]) == list(TWO_WAY) and report["residual"] == "split×init"
    assert abs(parts(report, "variance").sum() - np.var(acc, ddof=1)) < 1e-12
    assert report["total_variance"] == pytest.approx(np.var(acc, ddof=1), rel=1e-12)
    assert parts(report, "share").sum() == pytest.approx(1.0, abs=1e-12)
    assert_allclose(parts(report, "ss"), manual_sums_of_squares(acc), rtol=1e-10)
    assert parts(report, "df").tolist() == [6, 8, 48]


@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 2, 2), (4, 3, 2, 5), (2, 3, 2, 2)])
def test_parts_add_up_to_the_grid_variance_in_three_and_four_ways(shape):
    acc = np.random.default_rng(sum(shape)).normal(0.9, 0.03, shape)
    sources = ("split", "init", "order", "noise")[: len(shape)]
    report = variance_components(acc, sources, resamples=50)
    assert len(report["effects"]) == 2 ** len(shape) - 1
    assert abs(parts(report, "variance").sum() - np.var(acc, ddof=1)) < 1e-12
    assert parts(report, "share").sum() == pytest.approx(1.0, abs=1e-12)
    assert parts(report, "df").sum() == acc.size - 1
    assert report["residual"] == "×".join(sources)
    assert report["levels"] == dict(zip(sources, shape)) and report["count"] == acc.size


def test_three_way_sums_of_squares_and_estimates_match_the_textbook():
    acc = random_effects_grid({(0,): 0.03, (1,): 0.02, (2,): 0.01, (0, 1): 0.01, (0, 1, 2): 0.005}, (5, 6, 4))
    report = variance_components(acc, THREE, resamples=50)
    assert list(report["effects"]) == list(THREE_WAY)
    ss, sigma2 = textbook_three_way(acc)
    assert_allclose(parts(report, "ss"), ss, rtol=1e-10)
    assert_allclose(parts(report, "component"), np.maximum(sigma2, 0), rtol=1e-9, atol=1e-15)
    assert parts(report, "clipped").tolist() == (sigma2 < 0).tolist()


def test_a_pure_split_effect_has_the_whole_share():
    effect = np.random.default_rng(0).normal(0, 0.03, 6)
    acc = 0.9 + effect[:, None, None] + np.zeros((6, 5, 4))
    report = variance_components(acc, THREE, resamples=100)
    assert report["effects"]["split"]["share"] == pytest.approx(1.0, abs=1e-9)
    assert report["dominant"] == "split" and report["sentence"].endswith("the split dominates.")
    assert report["sentence"].startswith("On this grid of 6 splits × 5 initialisations × 4 orders, ")


def test_a_pure_three_way_interaction_goes_to_the_residual():
    # Products of zero-mean vectors: every marginal mean is the grand mean, so no lower effect.
    rng = np.random.default_rng(1)
    a, b, c = (v - v.mean() for v in (rng.normal(size=n) for n in (5, 4, 6)))
    acc = 0.9 + 0.01 * np.einsum("i,j,k->ijk", a, b, c)
    report = variance_components(acc, THREE, resamples=100)
    assert report["effects"]["split×init×order"]["share"] == pytest.approx(1.0, abs=1e-9)
    assert report["dominant"] == report["residual"] == "split×init×order"
    assert report["lead"]["first"] == "split×init×order" and report["lead"]["difference"] == pytest.approx(
        1.0
    )
    assert ": the split×init×order interaction " in report["sentence"]


def test_random_effects_estimates_recover_known_components_of_a_large_three_way_model():
    sds = dict(zip(itertools.chain.from_iterable(itertools.combinations(range(3), r) for r in (1, 2, 3)),
                   [0.04, 0.03, 0.02, 0.02, 0.015, 0.01, 0.02]))  # fmt: skip
    acc = random_effects_grid(sds, (30, 30, 30), seed=2)
    components = parts(variance_components(acc, THREE, resamples=20), "component")
    assert_allclose(components, np.array(list(sds.values())) ** 2, rtol=0.4)


def test_raw_estimates_are_unbiased_over_many_small_three_way_grids():
    # The method of moments is unbiased before clipping: averaged over 4000 simulated
    # 6 × 5 × 4 grids, each raw estimate lands within 4 standard errors of the truth.
    sds = {(0,): 0.03, (1,): 0.02, (2,): 0.01, (0, 1): 0.02, (0, 2): 0.0, (1, 2): 0.015, (0, 1, 2): 0.01}
    acc = random_effects_grid(sds, (6, 5, 4), seed=3, batch=(4000,))
    _, raw = variance._components(variance._sums_of_squares(acc, 3), (6, 5, 4))
    truth = np.array(list(sds.values())) ** 2
    error = np.abs(raw.mean(axis=0) - truth) / (raw.std(axis=0) / np.sqrt(len(raw)))
    assert (error < 4).all(), error


def test_negative_estimates_are_clipped_and_flagged():
    # A checkerboard: every row and column has the same mean, all variation is interaction.
    acc = 0.9 + 0.02 * (-1.0) ** np.add.outer(np.arange(4), np.arange(6)) + grid(0, 0, 1e-4, (4, 6))
    report = variance_components(acc, resamples=200)
    for source in ("split", "init"):
        assert report["effects"][source]["clipped"] and report["effects"][source]["component"] == 0.0
    assert not report["effects"]["split×init"]["clipped"]
    assert "clipped at 0" in format_variance(report)


def test_bootstrap_intervals_hold_the_estimates_and_follow_their_seed():
    acc = grid(0.03, 0.015, 0.01, shape=(8, 10), seed=5)
    report = variance_components(acc, seed=1)
    for name, effect in report["effects"].items():
        for key in ("share", "variance", "component", "component_share"):
            low, high = effect[f"{key}_ci95"]
            assert low <= effect[key] <= high, (name, key)
            assert low < high
    again, other = variance_components(acc, seed=1), variance_components(acc, seed=2)
    assert again["effects"] == report["effects"]
    assert other["effects"]["split"]["share_ci95"] != report["effects"]["split"]["share_ci95"]


def test_batches_do_not_change_three_way_intervals(monkeypatch):
    acc = random_effects_grid({(0,): 0.03, (1,): 0.02, (2,): 0.01, (0, 1, 2): 0.01}, (4, 5, 3), seed=4)
    whole = variance_components(acc, THREE, resamples=300, seed=7)
    monkeypatch.setattr(variance, "BATCH_BYTES", 8 * 5 * acc.size * 13)  # 13 resamples a batch
    assert variance_components(acc, THREE, resamples=300, seed=7) == whole


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_bootstrap_resamples_each_source(axis):
    # One source only: its variance moves only if its own levels are resampled.
    effect = np.expand_dims(np.linspace(-0.05, 0.05, 6), tuple(a for a in range(3) if a != axis))
    report = variance_components(0.9 + effect + np.zeros((6, 6, 6)), THREE, resamples=300)
    low, high = report["effects"][THREE[axis]]["variance_ci95"]
    assert low < high


def test_wider_level_gives_wider_intervals():
    acc = grid(0.03, 0.015, 0.01, seed=6)
    narrow = variance_components(acc, level=0.5)["effects"]["split"]["share_ci95"]
    wide = variance_components(acc, level=0.99)["effects"]["split"]["share_ci95"]
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


@pytest.mark.parametrize("shape, value", [((7, 3), 1.0), ((7, 3), 0.1), ((3, 2, 4), 29 / 30)])
def test_a_grid_without_variance(shape, value):
    sources = THREE[: len(shape)]
    report = variance_components(np.full(shape, value), sources, resamples=100)
    assert report["total_variance"] == 0.0 and report["dominant"] is None
    assert all(effect["share"] is None for effect in report["effects"].values())
    assert all(effect["variance"] == 0.0 for effect in report["effects"].values())
    assert "no variance to attribute" in report["sentence"]
    assert "no variance to attribute" in format_variance(report)
    json.dumps(report, allow_nan=False)


@pytest.mark.parametrize(
    "shape, sources, match",
    [
        ((1, 5), ("split", "init"), "at least 2 levels"),
        ((5, 1), ("split", "init"), "at least 2 levels"),
        ((3, 3, 1), THREE, "at least 2 levels"),
        ((6,), ("split",), "two distinct"),
        ((2, 2, 2), ("split", "init"), "one axis per source"),
        ((2, 2), THREE, "one axis per source"),
        ((2, 2), ("split", "split"), "two distinct"),
        ((2, 2), "si", "two distinct"),
        ((2, 2), ("split", "a×b"), "×"),
    ],
)
def test_bad_grids_and_sources_are_refused(shape, sources, match):
    with pytest.raises(ValueError, match=match):
        variance_components(np.random.default_rng(0).random(shape), sources)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_accuracies_are_refused(bad):
    acc = np.random.default_rng(0).random((3, 4, 2))
    acc[2, 3, 1] = bad
    with pytest.raises(ValueError, match="finite"):
        variance_components(acc, THREE)


@pytest.mark.parametrize("level", [0.0, 1.0, 95])
def test_a_level_outside_zero_one_is_refused(level):
    with pytest.raises(ValueError, match="level"):
        variance_components(grid(0.01, 0.01, 0.01), level=level)


def test_close_shares_are_reported_as_sharing_the_lead():
    effect = np.linspace(-0.05, 0.05, 8)
    acc = 0.9 + effect[:, None] + 0.97 * effect[None, :]  # split 51%, init 49%, no interaction
    report = variance_components(acc)
    split, init = (report["effects"][s]["share"] for s in ("split", "init"))
    assert abs(split - init) < TIE_MARGIN  # built to be close: a check on the check
    assert "the split and initialisation share the lead" in report["sentence"]
    assert report["lead"]["verdict"] == "shared" and {report["lead"]["first"], report["lead"]["second"]} == {
        "split",
        "init",
    }


def test_three_way_report_is_json_and_formats_as_a_table():
    acc = random_effects_grid({(0,): 0.01, (1,): 0.04, (2,): 0.01, (0, 1, 2): 0.005}, (5, 6, 4), seed=8)
    report = variance_components(acc, ("split", "noise", "order"), resamples=200)
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert report["sources"] == ["split", "noise", "order"] and report["dominant"] == "noise"
    assert report["sentence"].startswith(
        "On this grid of 5 splits × 6 noise draws × 4 orders, the split explains"
    )
    assert "the data order" in report["sentence"] and report["lead"]["first"] == "noise"
    assert ": the noise " in report["sentence"]
    lines = format_variance(report).splitlines()
    assert lines[0].split()[:3] == ["source", "variance", "share"]
    assert [line.split()[0] for line in lines[2:10]] == [*report["effects"], "total"]
    assert lines[-2:] == [report["sentence"], report["note"]]
    assert f"{report['effects']['noise']['share']:.1%}" in lines[3]


@pytest.mark.parametrize("shape, resamples", [((100, 10000), 10), ((2, 20000), 2000)])
def test_the_bootstrap_bounds_its_memory(shape, resamples):
    acc = np.random.default_rng(0).normal(0.9, 0.03, shape)
    tracemalloc.start()
    try:
        report = variance_components(acc, resamples=resamples)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # All resamples at once would take resamples × N × 8 bytes, 80 MB and 640 MB here
    # (more with the temporaries), and (2, 20000)'s index arrays alone 320 MB.
    assert peak < 80 * 2**20, peak  # the batches aim at 64 MiB
    assert report["effects"]["split×init"]["share_ci95"] is not None


@pytest.mark.parametrize("sources", [("split", "init"), THREE])
def test_the_figure_is_drawn_for_two_and_three_sources(tmp_path, sources):
    shape = (8, 10, 6)[: len(sources)]
    sds = {(axis,): 0.02 for axis in range(len(sources))} | {tuple(range(len(sources))): 0.01}
    acc = random_effects_grid(sds, shape, seed=9)
    plot_variance(acc, variance_components(acc, sources, resamples=200), tmp_path / "variance.png")
    image = matplotlib.image.imread(tmp_path / "variance.png")
    assert image.ndim == 3 and image.shape[0] > 300 and image[..., :3].std() > 0.05


def test_the_figure_is_drawn_for_a_grid_without_variance(tmp_path):
    acc = np.full((3, 4, 2), 0.9)
    plot_variance(acc, variance_components(acc, THREE, resamples=20), tmp_path / "variance.png")
    assert matplotlib.image.imread(tmp_path / "variance.png").std() > 0.01


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
    assert report["dominant"] in TWO_WAY
    assert report["sentence"].startswith("On this grid of 6 splits × 6 initialisations")
    words = {"split": "the split", "init": "initialisation", "split×init": "the split×init interaction"}
    verdict = report["sentence"].split(": ", 1)[1]
    leader = words[report["dominant"]]
    assert verdict.startswith((f"{leader} dominates", f"{leader} leads, though not clearly")) or (
        " share the lead" in verdict
    )


def test_a_variance_that_is_rounding_of_zero_prints_as_0():
    # Sums of squares of an exact 0 left 1.28e-32 in the table (a 3 x 3 x 3 grid, order 0%).
    effect = {"variance": 1.28e-32, "share": 0.0, "share_ci95": [0.0, 0.25], "component": 1.08e-19,
              "component_ci95": [-1e-30, 2.86e-05], "clipped": False}  # fmt: skip
    kept = effect | {"variance": 5.21e-4, "component": 7.29e-4, "component_ci95": [0.0, 1.03e-3]}
    report = {"level": 0.95, "effects": {"order": effect, "split": kept}, "total_variance": 6.13e-4,
              "dominant": "split", "sentence": "", "note": ""}  # fmt: skip
    order, split = format_variance(report).splitlines()[2:4]
    assert order.split()[:2] == ["order", "0"] and "   0 [0, 2.86e-05]" in order
    assert split.split()[:2] == ["split", "0.000521"] and "0.000729 [0, 0.00103]" in split


def test_the_random_effects_verdict_is_added_only_where_it_says_something_else():
    # Pure interaction noise: the shares' runner-up is initialisation, the estimates' the split;
    # both say the interaction dominates, so the sentence says it once.
    same = variance_components(grid(0, 0, 0.02))
    assert same["lead"]["second"] != same["component_lead"]["second"]
    assert same["lead"]["verdict"] == same["component_lead"]["verdict"] == "dominates"
    assert "random-effects" not in same["sentence"]
    # A split effect beside the interaction: the shares' lead is not confirmed, the estimates'
    # (which discount what noise adds to the split's means) is.
    other = variance_components(grid(0.01, 0.0, 0.02, seed=0), resamples=400)
    assert other["lead"]["verdict"] == "unconfirmed" and other["component_lead"]["verdict"] == "dominates"
    assert other["sentence"].endswith(
        "(by the random-effects estimates, which discount what noise adds to the means, "
        "the split×init interaction dominates)."
    )
