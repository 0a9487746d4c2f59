"""Memory: `train.chunk_size=auto` picks the chunk from the rows, the widths and
`runtime.memory_budget`; the estimate it uses bounds XLA's own; the width it picks changes no
seed's numbers; a budget that holds no seed is one line before training."""

import jax
import numpy as np
import pytest

from conftest import assert_bad_setting, assert_one_line_error, cli, run_job, settings_of
from gophernet_jax import Sizes, train_population
from gophernet_jax.config import DATA_DIR, ConfigError
from gophernet_jax.splits import load_table
from gophernet_jax.training import (
    CACHE_TARGET,
    DEFAULT_MEMORY_BUDGET,
    LEAST_CHUNK,
    MAX_CHUNK,
    SEED_BLOCK,
    MemoryBudgetError,
    RawSplits,
    activation_bytes,
    chunk_bytes,
    chunk_choice,
    core_each,
    least_chunk,
    population_devices,
    run_population,
    seed_bytes,
)


@pytest.mark.parametrize(
    ("value", "bytes_"),
    [("1GiB", 2**30), ("512MB", 512 * 10**6), ("1.5 GiB", 3 * 2**29), (2000, 2000), ("64kib", 2**16)],
)
def test_a_memory_budget_is_bytes_or_a_number_with_a_unit(value, bytes_):
    assert settings_of(f"runtime.memory_budget={value}").runtime.memory_budget == bytes_


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("runtime.memory_budget=lots", "runtime.memory_budget"),
        ("runtime.memory_budget=0", "runtime.memory_budget"),
        ("runtime.memory_budget=-1GB", "runtime.memory_budget"),
        ("runtime.memory_budget=2PB", "runtime.memory_budget"),
        ("runtime.memory_budget=true", "runtime.memory_budget"),
        ("train.chunk_size=0", "train.chunk_size"),
        ("train.chunk_size=-3", "train.chunk_size"),
        ("train.chunk_size=1.5", "train.chunk_size"),
        ("train.chunk_size=big", "train.chunk_size"),
        ("train.chunk_size=true", "train.chunk_size"),
    ],
)
def test_a_bad_chunk_or_budget_setting_is_one_line_naming_its_key(override, key):
    assert_bad_setting(key, override)
    if key == "train.chunk_size":  # every bad width names both choices
        with pytest.raises(ConfigError, match="expected auto or an integer >= 1"):
            settings_of(override)


def test_chunk_size_is_auto_by_default_within_two_gibibytes():
    settings = settings_of()
    assert settings.train.chunk_size == "auto"
    assert settings.runtime.memory_budget == DEFAULT_MEMORY_BUDGET == 2**31


def test_auto_takes_the_widest_chunk_that_fits_the_budget_on_every_device():
    sizes, rows, cells = Sizes(10, 3, 3), 100_000, 1_000_000
    for budget in (2**28, 2**29, 2**30, 2**32):
        for count in (2, 3, 500, 10_000):
            choice = chunk_choice(count, sizes, rows, memory_budget=budget, table_cells=cells)
            devices = population_devices(count)
            assert choice.devices == devices and choice.seed_bytes == seed_bytes(
                sizes, rows, table_cells=cells
            )
            assert 2 <= choice.size <= MAX_CHUNK
            working = devices * chunk_bytes(choice.size, sizes, rows, table_cells=cells)
            assert choice.working_bytes == working <= budget
            assert working >= choice.size * devices * choice.seed_bytes
            # whole blocks of 16 seeds where one fits (`chunk_layout`: a split each, `least_chunk`),
            # else narrower, said so
            least = least_chunk(own_splits=True)
            blocks = choice.size >= least
            assert choice.size % SEED_BLOCK == 0 if blocks else "narrower than a block" in choice.reason
            step = SEED_BLOCK if blocks else 1
            wider = devices * chunk_bytes(choice.size + step, sizes, rows, table_cells=cells)
            cached = (
                max(least, CACHE_TARGET // activation_bytes(sizes, rows) // SEED_BLOCK * SEED_BLOCK)
                if core_each(devices)
                else MAX_CHUNK
            )
            assert choice.size in (MAX_CHUNK, cached) or wider > budget
            assert choice.size <= cached
            assert choice.asked == "auto" and f"{choice.size} seeds per chunk" in choice.reason
            if blocks:
                assert choice.seeds_per_chunk % SEED_BLOCK == 0 and choice.seeds_per_chunk >= least
            else:
                assert choice.seeds_per_chunk < least
    # the article's network, each device a core of its own (the package's default): as many
    # seeds as keep their activations within a core's cache (`CACHE_TARGET`), whatever the
    # budget's room; a wide one, the least chunk of whole blocks
    assert core_each(population_devices(1000))
    article = chunk_choice(1000, Sizes(4, 3, 3), 150)
    assert article.size == 144 and article.seeds_per_chunk == 128 and article.chunks == 8
    assert (
        144 * activation_bytes(Sizes(4, 3, 3), 150)
        <= CACHE_TARGET
        < 160 * activation_bytes(Sizes(4, 3, 3), 150)
    )
    assert "within 512 KiB, a core's cache" in article.reason
    wide = chunk_choice(200, Sizes(64, 32, 10), 1797)
    assert (
        wide.size == LEAST_CHUNK and "two blocks, whose activations, 9.21 MiB, outgrow 512 KiB" in wide.reason
    )
    # a device with several cores spreads a wide chunk's operations over them: the widest
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("gophernet_jax.training.usable_cores", lambda: 2 * population_devices(1000))
        several = chunk_choice(1000, Sizes(4, 3, 3), 150)
    assert several.size == MAX_CHUNK and "device(s) of several cores" in several.reason
    # shared data: two blocks at least (a chunk of one pads its products with the rows, and
    # computed otherwise); a split each: one block
    assert least_chunk(own_splits=False) == LEAST_CHUNK == 2 * least_chunk(own_splits=True)
    # a width given is kept, and the estimate still reported
    given = chunk_choice(1000, sizes, rows, chunk_size=7, memory_budget=1)
    assert (given.size, given.asked) == (7, 7) and "as given" in given.reason
    assert "narrower than two blocks of 16 seeds" in given.reason and "may differ" in given.reason
    own = chunk_choice(1000, sizes, rows, chunk_size=16, table_cells=cells)
    assert own.seeds_per_chunk == 16 and "narrower" not in own.reason
    # a width of whole blocks is kept as it is; another is trained in whole blocks, said so
    assert "block" not in chunk_choice(1000, sizes, rows, chunk_size=32).reason
    rounded = chunk_choice(1000, sizes, rows, chunk_size=40)
    assert rounded.seeds_per_chunk % SEED_BLOCK == 0 and rounded.seeds_per_chunk <= 32
    assert "whole blocks of 16 seeds: at most 32" in rounded.reason


def test_auto_refuses_a_budget_that_holds_no_seed():
    sizes = Sizes(64, (4096, 4096), 10)
    with pytest.raises(MemoryBudgetError, match="one seed needs about") as error:
        chunk_choice(10, sizes, 1_797_000)
    assert (
        error.value.needs == chunk_bytes(2, sizes, 1_797_000) * population_devices(10) > DEFAULT_MEMORY_BUDGET
    )
    assert chunk_choice(10, sizes, 1_797_000, memory_budget=error.value.needs).size == 2


def _program_bytes(count: int, chunk: int, **kw) -> int:
    """XLA's figure for the population program's temporaries, per device (`memory_analysis`)."""
    seen = {}

    def compile_only(*args):
        memory = run_population.lower(*args).compile().memory_analysis()
        seen["bytes"] = memory.temp_size_in_bytes
        seen["spec"] = args[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("gophernet_jax.training.run_population", compile_only)
        train_population(0, count, chunk_size=chunk, **kw)
    return seen["bytes"], seen["spec"]


def test_the_estimate_bounds_xlas_own_figure_for_a_seed_with_its_own_split():
    # wine with every seed on its own split: the slope of XLA's temporaries from chunks of
    # 4 to 8 seeds (per device) is one seed's working memory; the estimate must not be under it.
    table = load_table(DATA_DIR / "wine.csv", "class")
    raw = RawSplits(table, 0.2)
    sizes = Sizes(table.x.shape[1], 16, len(table.class_names))
    kw = dict(sizes=sizes, train_xy=(None, None), test_xy=(None, None), epochs=3, learning_rate=0.3)
    kw |= dict(raw=raw, vary=("split",), record_every=0)
    devices = population_devices(16)
    small, spec_small = _program_bytes(4 * devices, 4, **kw)
    large, spec_large = _program_bytes(8 * devices, 8, **kw)
    assert (spec_small.per_chunk, spec_large.per_chunk) == (4, 8)
    per_seed = (large - small) / 4
    estimate = seed_bytes(sizes, len(table.labels), table_cells=table.x.size)
    assert 0 < per_seed <= estimate, (per_seed, estimate)


def test_a_seed_with_its_own_split_trains_the_same_at_any_chunk_width():
    # Chunks of 3 seeds, of one block (16: its products are the seed's own, nothing pads
    # them, `training.least_chunk`), of 32 and auto's: bit for bit the same seeds.
    table = load_table(DATA_DIR / "iris.csv", "species")
    kw = dict(epochs=100, learning_rate=0.3, raw=RawSplits(table, 0.2), vary=("split", "init"))
    runs = [
        train_population(0, 9, Sizes(4, 3, 3), (None, None), (None, None), chunk_size=chunk, **kw)
        for chunk in (3, 16, 32, "auto")
    ]
    for other in runs[1:]:
        for a, b in zip(jax.tree.leaves(runs[0]), jax.tree.leaves(other)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_the_job_records_its_chunk_and_a_budget_too_small_is_one_line(tmp_path):
    # iris, 6 seeds on up to 2 devices: a chunk pads its first layer's product to 32 seeds
    # (two blocks), so 1.2 MB holds a chunk of a few seeds on each, and 1 KB none.
    overrides = ["data=iris", "seeds.count=6", "train.epochs=20"]
    document = run_job(tmp_path / "run", *overrides, "runtime.memory_budget=1.2MB")
    chunk = document["chunk"]
    assert chunk["asked"] == "auto" and chunk["memory_budget"] == 1_200_000
    assert chunk["size"] * chunk["devices"] * chunk["seed_bytes"] <= chunk["working_bytes"] <= 1_200_000
    assert chunk["chunks"] * chunk["seeds_per_chunk"] >= 6 and chunk["seeds_per_chunk"] <= chunk["size"]
    done = cli(tmp_path, *overrides, "runtime.memory_budget=1KB")
    line = assert_one_line_error(done, "config key runtime.memory_budget", "one seed needs about", status=2)
    needs = line.split("runtime.memory_budget=")[-1].split()[0]
    assert line.endswith("narrow model.hidden, or train on fewer rows") and needs.endswith("KiB"), line
    needed = chunk["devices"] * chunk_bytes(2, Sizes(4, 3, 3), 150)  # iris: 150 rows scored
    assert needed > 1000 and settings_of(f"runtime.memory_budget={needs}").runtime.memory_budget >= needed


def test_the_chunk_and_the_budget_leave_a_jobs_identity_alone():
    # They change no result: a sweep run again with another chunk width or budget resumes
    # its finished jobs, and a job's folder name leaves them out.
    from omegaconf import OmegaConf

    from gophernet_jax.config import CONF_DIR
    from gophernet_jax.job import config_hash

    same = {
        config_hash(settings_of(*o)) for o in [(), ("train.chunk_size=7",), ("runtime.memory_budget=2GiB",)]
    }
    assert len(same) == 1 and config_hash(settings_of("train.epochs=7")) not in same
    excluded = OmegaConf.load(CONF_DIR / "config.yaml").hydra.job.config.override_dirname.exclude_keys
    assert {"train.chunk_size", "runtime.memory_budget"} <= set(excluded)


def test_the_program_returns_the_test_rows_a_split_per_seed_is_drawn_again_with():
    # row_results takes each split's test rows from the training program, not from every
    # split drawn again (500 copies of a 100 000-row table did not fit in 2 GB).
    from gophernet_jax.splits import make_splits
    from gophernet_jax.testrows import RowResults, why_no_table
    from gophernet_jax.training import source_keys

    table = load_table(DATA_DIR / "iris.csv", "species")
    kw = dict(epochs=5, learning_rate=0.3, raw=RawSplits(table, 0.2, split_seed=3), vary=("split",))
    population = train_population(0, 6, Sizes(4, 3, 3), (None, None), (None, None), row_results=True, **kw)
    drawn = make_splits(table, source_keys("split", np.uint32(3), np.arange(6, dtype=np.uint32))).test_idx
    np.testing.assert_array_equal(population.test_rows, drawn)
    assert population.test_rows.dtype == np.int32 and population.test_predicted.shape == drawn.shape
    # one seed per split: rows.csv would repeat rows_correct.npz's bits, so it is left out
    one_each = RowResults(
        *(np.zeros((6, 30)),) * 2, np.arange(6), np.zeros((6, 30), int), np.zeros((6, 30)), ()
    )
    assert "one seed per split" in why_no_table(one_each)
    assert (
        why_no_table(one_each._replace(groups=np.repeat(np.arange(3), 2), labels=np.zeros((3, 30)))) is None
    )


def test_a_jobs_folder_name_leaves_out_exactly_the_keys_its_config_hash_leaves_out():
    # A key the hash ignores but the folder name holds made a sweep run again with
    # report.interval (or report.gamma) train every job again, beside its finished twin.
    from omegaconf import OmegaConf

    from gophernet_jax.config import CONF_DIR
    from gophernet_jax.job import config_hash

    ignored = {
        "runtime.progress": "false", "runtime.ynn_fusion": "true", "runtime.compilation_cache": "false",
        "runtime.host_devices": "1", "runtime.memory_budget": "1GiB", "train.chunk_size": "7",
        "report.baseline": "'optimizer.learning_rate=0.3'", "report.interval": "seeds_and_rows",
        "report.gamma": "0.6",
    }  # fmt: skip
    base = config_hash(settings_of())
    for key, value in ignored.items():
        assert config_hash(settings_of(f"{key}={value}")) == base, key
    excluded = OmegaConf.load(CONF_DIR / "config.yaml").hydra.job.config.override_dirname.exclude_keys
    assert set(excluded) == set(ignored)
