"""One job, apart from Hydra: validated settings (`config.Config`) in; a trained seed
population, its typed summary (`summary.Summary`), the pairing fingerprints and every
results file out. The Hydra entry point (`app`) adds errors, resume and the search protocol.

Imports that only some runs need (the statistics' scipy, matplotlib for the plots, pandas
for the results files) are made where they are used, so the command starts quickly.
"""

import contextlib
import dataclasses
import hashlib
import importlib
import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from gophernet_jax import progress, runtime
from gophernet_jax.cause import format_cause, likely_cause
from gophernet_jax.config import Config, ConfigError, data_file, portable_file
from gophernet_jax.dataset import DataError, Dataset, check_range, load_split
from gophernet_jax.files import write_json
from gophernet_jax.model import Net, Sizes
from gophernet_jax.splits import load_table, stratified_parts
from gophernet_jax.summary import Objective, Pairing, Summary, TiedRows
from gophernet_jax.testrows import RowResults, row_results, why_not
from gophernet_jax.training import (
    SOURCES,
    ChunkChoice,
    MemoryBudgetError,
    Population,
    RawSplits,
    chunk_choice,
    draw_key,
    first_split,
    scored_rows,
    seed_indices,
    train_population,
)

log = logging.getLogger("gophernet_jax.app")  # the logger the run's report has always used


class Data(NamedTuple):
    """What a run trains on: the training, validation and test sets (split 0 of a raw
    table), the raw table when seeds draw their own split or noise inside the program, the
    scaling of raw rows when there is one split without noise, and a fingerprint of what
    every seed is tested on, and where each test row comes from (`testrows`)."""

    train_set: Dataset
    test_set: Dataset
    val_set: Dataset | None = None
    raw: RawSplits | None = None
    scaling: dict[str, Any] | None = None
    test_rows: str = ""
    test_row_ids: np.ndarray | None = None  # each test row's index in the table, or line in the file


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _array_digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(repr((a.dtype.str, a.shape)).encode() + a.tobytes())
    return h.hexdigest()[:16]


def _article_val_counts(
    train_labels: np.ndarray, test_labels: np.ndarray, fraction: float, classes
) -> np.ndarray:
    """Validation rows per class of the article's train.csv: round(fraction · n_c) of the
    class's rows in both files (so 0.2 of iris is 10 per class, as for a raw table),
    at least 1, leaving every class a training row."""
    train = np.bincount(train_labels, minlength=len(classes))
    everything = train + np.bincount(test_labels, minlength=len(classes))
    val = np.maximum(np.floor(fraction * everything + 0.5).astype(np.int64), 1)
    for c in np.flatnonzero(train - val < 1):
        raise DataError(
            f"class {classes[c]!r} has {train[c]} training rows: too few to hold out "
            f"{val[c]} for validation (data.val_fraction) and keep one for training"
        )
    return val


def _hold_out(settings: Config, train_set: Dataset, test_set: Dataset) -> tuple[Dataset, Dataset | None]:
    """The article's train.csv split into training and validation parts, stratified, drawn
    from split draw 0 of `data.split_seed`; the padding row stays in training."""
    fraction = settings.data.val_fraction
    if not fraction:
        return train_set, None
    padded = settings.data.padding_row
    rows = len(train_set.x) - padded
    labels = np.argmax(train_set.y[:rows], axis=1)
    counts = _article_val_counts(labels, np.argmax(test_set.y, axis=1), fraction, train_set.class_names)
    key = draw_key("split", settings.data.split_seed)
    parts = jax.jit(lambda k: stratified_parts(k, labels, [counts]))(key)
    train_idx, val_idx = (np.asarray(a) for a in parts)
    train_idx = np.concatenate([train_idx, np.arange(rows, rows + padded)])
    names = train_set.feature_names, train_set.class_names
    return (
        Dataset(train_set.x[train_idx], train_set.y[train_idx], *names),
        Dataset(train_set.x[val_idx], train_set.y[val_idx], *names),
    )


def load_data(settings: Config) -> Data:
    """Reads the article's files, or a raw table and its first split (see `Data`)."""
    data = settings.data
    if data.path is None:
        train, test = data_file(data.train), data_file(data.test)
        train_set, test_set = load_split(train, test, data.labels, padding_row=data.padding_row)
        for path, part in ((train, train_set), (test, test_set)):
            check_range(path, part.x, part.feature_names, settings.train.dtype)
        train_set, val_set = _hold_out(settings, train_set, test_set)
        lines = np.arange(len(test_set.x)) + 2  # the header is line 1
        if data.padding_row:
            lines[-1] = -1  # the reference loader's padding row: no line holds it
        digest = _array_digest(test_set.x, test_set.y)
        return Data(train_set, test_set, val_set, test_rows=digest, test_row_ids=lines)
    path = data_file(data.path)
    table = load_table(path, data.label)
    check_range(path, table.x, table.feature_names, settings.train.dtype, spans=True)
    raw = RawSplits(
        table, data.test_fraction, data.split_seed, data.noise_seed, data.noise, data.val_fraction
    )
    first, low, span = first_split(raw, settings.train.dtype)  # one program
    names = (table.feature_names, table.class_names)
    train_set = Dataset(np.asarray(first.x_train), np.asarray(first.y_train), *names)
    test_set = Dataset(np.asarray(first.x_test), np.asarray(first.y_test), *names)
    val_set = Dataset(np.asarray(first.x_val), np.asarray(first.y_val), *names) if data.val_fraction else None
    ids = np.asarray(first.test_idx)
    if set(settings.seeds.varied()) & {"split", "noise"}:
        indices = _draws(settings)
        draws = _array_digest(indices["split"], indices["noise"])
        test_rows = _digest(
            _array_digest(table.x, table.labels), data.test_fraction, data.val_fraction, data.split_seed,
            data.noise_seed, data.noise, settings.train.dtype, draws,
        )  # fmt: skip
        return Data(train_set, test_set, val_set, raw, test_rows=test_rows, test_row_ids=ids)
    test_rows = _array_digest(test_set.x, test_set.y)
    if data.noise:
        return Data(train_set, test_set, val_set, test_rows=test_rows, test_row_ids=ids)
    # The scaling training used: fitted on the training rows in the run's dtype.
    scaling = {
        "min": np.asarray(low).tolist(),
        "span": np.asarray(span).tolist(),
        "dtype": settings.train.dtype,
    }
    return Data(train_set, test_set, val_set, scaling=scaling, test_rows=test_rows, test_row_ids=ids)


def run(
    settings: Config, later: Sequence[str] = ()
) -> tuple[Population, Data, dict[str, float], ChunkChoice]:
    """Loads the data and trains the configured population; returns it with the seconds
    spent loading, compiling and training (compiling as JAX reports it) and the chunk width
    it trained at (`chunk_of`). The modules `later` are imported in the background once the
    data is loaded (`_import_in_background`): loading a raw table imports pandas, which a
    concurrent import would slow down."""
    start = time.perf_counter()
    jax.config.update("jax_enable_x64", settings.train.dtype == "float64")
    with runtime.CompileCounter() as load_compiles:
        data = load_data(settings)
    loaded = time.perf_counter()
    _import_in_background(*later)
    rows, batch = len(data.train_set.x), settings.train.batch_size
    if batch is not None and batch > rows:
        raise ConfigError(f"config key train.batch_size: {batch} is more than the {rows} training rows")
    count, epochs = settings.seeds.trained(), settings.train.epochs
    chunk = chunk_of(settings, data)
    show = progress.wanted(settings.runtime.progress)
    with runtime.CompileCounter() as compiles, runtime.prompt_interrupt():
        with progress.Progress(count * epochs) if show else contextlib.nullcontext():
            population = _train(settings, data, show, chunk.size)
    trained = time.perf_counter()
    # Accuracy is a count of rows over the row count: store the exact fraction, in float64.
    rows = {"train": len(data.train_set.x), "test": len(data.test_set.x)}
    population = population._replace(
        train_accuracy=_exact_fraction(population.train_accuracy, rows["train"]),
        test_accuracy=_exact_fraction(population.test_accuracy, rows["test"]),
    )
    if population.val_accuracy is not None:
        population = population._replace(
            val_accuracy=_exact_fraction(population.val_accuracy, len(data.val_set.x))
        )
    phases = {
        "load": loaded - start,
        "compile": compiles.seconds,
        "train": trained - loaded - compiles.seconds,
        "compilations": compiles.count + load_compiles.count,
        "cache_hits": compiles.cache_hits + load_compiles.cache_hits,  # loaded, not compiled
    }
    return population, data, phases, chunk


def chunk_of(settings: Config, data: Data) -> ChunkChoice:
    """The chunk width the job trains at (`training.chunk_choice`), decided before training;
    a budget that cannot hold the least chunk (two seeds) per device is a `ConfigError` naming the keys."""
    val = None if data.val_set is None else data.val_set.x
    rows, cells = scored_rows(data.raw, data.train_set.x, val, data.test_set.x)
    budget = settings.runtime.memory_budget
    try:
        choice = chunk_choice(
            settings.seeds.trained(), _sizes(settings, data), rows, chunk_size=settings.train.chunk_size,
            memory_budget=budget, dtype=settings.train.dtype, table_cells=cells,
        )  # fmt: skip
    except MemoryBudgetError as e:
        raise ConfigError(
            f"config key runtime.memory_budget: {e}; raise it (runtime.memory_budget={_budget_text(e.needs)}"
            " holds the least chunk per device), narrow model.hidden, or train on fewer rows"
        ) from None
    working = choice.working_bytes
    if choice.asked != "auto" and working > budget:
        log.warning(
            f"train.chunk_size={choice.asked}: about {working / 2**30:.3g} GiB of working memory, more than "
            f"runtime.memory_budget ({budget / 2**30:.3g} GiB); train.chunk_size=auto fits the budget"
        )
    return choice


def _budget_text(n: int) -> str:
    """A budget of at least `n` bytes as `runtime.memory_budget` takes it: 1.3GiB, 69KiB."""
    unit, scale = next(
        (u, k) for u, k in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10), ("B", 1)) if n >= k
    )
    return f"{math.ceil(10 * n / scale) / 10:g}{unit}"


def _draws(settings: Config) -> dict[str, np.ndarray]:
    """Each source's draw for every seed the job trains (its slice: seeds `seeds.start`.. on)."""
    seeds = settings.seeds
    return seed_indices(seeds.trained(), seeds.varied(), seeds.grid, seeds.start)


def _sizes(settings: Config, data: Data) -> Sizes:
    return Sizes(data.train_set.x.shape[1], settings.model.widths(), data.train_set.y.shape[1])


def net_of(settings: Config) -> Net:
    """The activation and loss of the configured network."""
    return Net(settings.model.activation, settings.train.loss)


def _train(settings: Config, data: Data, show: bool, chunk_size: int) -> Population:
    sizes = _sizes(settings, data)
    val = data.val_set
    population = train_population(
        settings.seeds.base,
        settings.seeds.trained(),
        sizes,
        (data.train_set.x, data.train_set.y),
        (data.test_set.x, data.test_set.y),
        epochs=settings.train.epochs,
        learning_rate=settings.optimizer.learning_rate,
        rule=settings.train.rule,
        optimizer=settings.optimizer.name,
        dtype=settings.train.dtype,
        chunk_size=chunk_size,
        record_every=settings.report.curve_every,
        progress=show,
        raw=data.raw,
        vary=tuple(settings.seeds.vary),
        grid=settings.seeds.grid,
        val_xy=None if val is None else (val.x, val.y),
        batch_size=settings.train.batch_size,
        order_seed=settings.data.order_seed,
        ties=settings.report.ties,
        net=net_of(settings),
        init=settings.model.init,
        weight_decay=settings.optimizer.weight_decay,
        schedule=settings.optimizer.schedule,
        warmup=settings.optimizer.warmup,
        row_results=why_not(settings, len(data.test_set.x)) is None,
        start=settings.seeds.start,
    )
    # On the host from here on: NumPy on a jax.Array (np.sum calls its .sum) would compile
    # a small program per operation.
    return jax.device_get(population)


def _exact_fraction(accuracy: jax.Array, rows: int) -> np.ndarray:
    return np.round(np.asarray(accuracy, dtype=np.float64) * rows) / rows


def held_fixed(settings: Config) -> list[str]:
    """The sources drawn once for every seed: a population's statistics are conditional on them."""
    varied = set(settings.seeds.varied())
    present = {"split", "init"} | ({"noise"} if settings.data.noise else set())
    present |= {"order"} if settings.train.batch_size is not None else set()
    return [s for s in SOURCES if s in present and s not in varied]


def design_of(settings: Config) -> dict[str, int] | None:
    """The crossed design of the seeds (`seeds.grid`), or None when they are independent
    (or a slice of the design, whose cells the pooled population crosses again)."""
    return dict(settings.seeds.grid) if settings.seeds.grid and settings.seeds.slices == 1 else None


def objective_of(population: Population, settings: Config) -> Objective:
    """The statistic a search optimises (`report.objective`) over validation accuracy, or
    test accuracy without a validation part; returned to the sweeper as an error to minimise."""
    from gophernet_jax.statistics import objective

    on = "validation" if population.val_accuracy is not None else "test"
    values = population.val_accuracy if on == "validation" else population.test_accuracy
    value = objective(np.asarray(values), settings.report.objective)
    return Objective(settings.report.objective, on, value, 1.0 - value)


def summary_of(population: Population, data: Data, settings: Config) -> dict[str, Any]:
    """The fields of a `Summary` that describe the population: spreads of the accuracies
    and losses, divergence, collapse, ties, the objective and the row counts."""
    from gophernet_jax.statistics import summarize

    count, diverged = population.final_loss.shape[0], int(np.sum(population.diverged))
    design, resolution = design_of(settings), settings.report.resolution
    summary = {
        "test_accuracy": {
            **summarize(population.test_accuracy, design=design, resolution=resolution),
            "diverged": diverged,
            "conditional_on": held_fixed(settings),
        },
        "train_accuracy": summarize(population.train_accuracy, resolution=resolution),
    }
    if population.val_accuracy is not None:
        summary["val_accuracy"] = summarize(population.val_accuracy, design=design, resolution=resolution)
    loss = summarize(population.final_loss, resolution=resolution, bounds=(0.0, math.inf))
    summary |= {
        "final_loss": {k: loss[k] for k in ("count", "mean", "std", "min", "q05", "median", "q95", "max")},
        "diverged": diverged,
        "collapsed": int(np.sum(population.collapsed)),
        "tied_rows": TiedRows(
            seeds_with_ties=int(np.sum(np.asarray(population.tied_rows) > 0)),
            total=int(np.sum(population.tied_rows)),
        ),
        "ties": settings.report.ties,
        "objective": objective_of(population, settings),
        "train_rows": len(data.train_set.x),
        "val_rows": 0 if data.val_set is None else len(data.val_set.x),
        "test_rows": len(data.test_set.x),
        "seeds": count,
    }
    return summary


def pairing(settings: Config, data: Data, sizes: Sizes) -> Pairing:
    """Fingerprints of what makes seed i comparable across runs: its initial weights and the
    rows it is tested on. Two jobs are compared seed by seed only when both match."""
    indices = _draws(settings)
    init, poke = indices["init"], indices["poke"]
    weights = _digest(
        str(jax.config.jax_default_prng_impl), settings.seeds.base, list(sizes), settings.train.dtype,
        _array_digest(init.astype(np.int64)),
        *([] if settings.model.init == "uniform01" else [settings.model.init]),
        *([_array_digest(poke.astype(np.int64))] if poke.any() else []),  # poked weights are others
    )  # fmt: skip
    return Pairing(init=weights, test_rows=data.test_rows, seeds=settings.seeds.trained())


def format_report(
    population: Population, summary: Summary, base: int, interval: str = "seeds", start: int = 0
) -> str:
    """The lines printed at the end of a run: the article's line for one seed, a table for many.
    With `interval` "seeds_and_rows" the mean's interval shown is the multi-bootstrap's."""
    from gophernet_jax.reporting import format_spread

    if summary.seeds == 1:
        acc = float(population.test_accuracy[0])
        flags = [f for f, on in (("diverged", summary.diverged), ("collapsed", summary.collapsed)) if on]
        flag = f"  ({', '.join(flags)})" if flags else ""
        rows = summary.test_rows
        return f"Accuracy = {acc:0.2f}  (seed {start} of base seed {base}, {rows} test rows){flag}"
    document = summary.to_json()
    accuracy = document["test_accuracy"]
    if interval == "seeds_and_rows" and accuracy.get("mean_ci95_seeds_and_rows"):
        accuracy = accuracy | {
            "mean_ci95": accuracy["mean_ci95_seeds_and_rows"],
            "mean_ci95_method": accuracy["mean_ci95_seeds_and_rows_method"],
        }
        document = document | {"test_accuracy": accuracy}
    return format_spread(document, summary.test_rows)


def _file_digest(path: str) -> str:
    """A file's content digest; a file that cannot be read keeps its name (loading it
    then fails with the one-line `DataError`)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return path


def portable_config(settings: Config) -> dict[str, Any]:
    """The validated config as saved with a run: a shipped data file is named
    `shipped:NAME`, not by this machine's path, so a moved checkout reads the same."""
    config = dataclasses.asdict(settings)
    for key in ("train", "test", "path"):
        if config["data"][key] is not None:
            config["data"][key] = portable_file(config["data"][key])
    return config


def config_hash(settings: Config) -> str:
    """Identifies what a job computes: a sweep run again skips jobs whose hash finished.

    Only what changes the results counts: data files by content (not by path), and
    neither the runtime settings, the chunk width (`train.chunk_size`: a seed's numbers do
    not depend on it) nor the report's choices (the sweep's baseline, the interval printed,
    the verdicts' gamma).
    """
    config = dataclasses.asdict(settings)
    config.pop("runtime")
    config["train"].pop("chunk_size")
    for key in ("baseline", "interval", "gamma"):  # the report's choices: the job computes both intervals
        config["report"].pop(key)
    if config["data"]["path"] is not None:  # the article's files are not read then
        config["data"]["train"] = config["data"]["test"] = None
    for key in ("train", "test", "path"):
        if config["data"][key] is not None:
            config["data"][key] = _file_digest(data_file(config["data"][key]))
    return _digest(config)


def run_label(settings: Config) -> str:
    """The run's name in its plots: rule, learning rate and width, with the optimizer and
    activation where they are not the article's (`autodiff, adam lr 0.01, hidden 32, tanh`)."""
    optimizer, model = settings.optimizer, settings.model
    name = "" if optimizer.name == "sgd" else f"{optimizer.name} "
    activation = "" if model.activation == "sigmoid" else f", {model.activation}"
    return f"{settings.train.rule}, {name}lr {optimizer.learning_rate:g}, hidden {model.hidden}{activation}"


def write_outputs(
    settings: Config,
    output_dir: Path,
    population: Population,
    data: Data,
    variance: dict | None,
    rows: RowResults | None = None,
) -> None:
    """Every file of a finished job but summary.json, which `job` writes last, as the mark
    of a complete job (`rows`: the population's `testrows.row_results`, made here when not
    given)."""
    from gophernet_jax.files import write_csv
    from gophernet_jax.reporting import curve_quantiles, results_frame
    from gophernet_jax.store import TrainedRun, save_run
    from gophernet_jax.training import curve_epochs

    results = results_frame(population, settings.seeds.base, settings.seeds.start)
    draws = _draws(settings)
    shown = ["init", "split", "noise"] if settings.data.path is not None else []
    shown += ["order"] if settings.train.batch_size is not None else []
    shown += ["init", "poke"] if "poke" in settings.seeds.varied() else []
    shown = list(dict.fromkeys(shown))
    for i, source in enumerate(shown):  # which draw of each source every seed had
        results.insert(1 + i, f"{source}_seed", draws[source])
    write_csv(results, output_dir / "results.csv")
    table = _write_rows(population, data, settings, output_dir, rows)
    config = portable_config(settings)
    names = data.train_set.feature_names, data.train_set.class_names
    seeds = np.arange(settings.seeds.start, settings.seeds.start + settings.seeds.trained())
    run = TrainedRun(population.params, seeds, *names, config, data.scaling)
    save_run(output_dir, run)
    label = run_label(settings)
    curves = None
    if population.curves is not None:
        epochs = curve_epochs(settings.train.epochs, settings.report.curve_every)
        curves = curve_quantiles(epochs, population.curves.loss, population.curves.test_accuracy)
        write_csv(curves, output_dir / "curves.csv")
    if not plotted(settings):
        return
    from gophernet_jax.plots import plot_accuracy, plot_curves, plot_rows, plot_variance

    test_rows = len(data.test_set.x)
    plot_accuracy({label: np.asarray(population.test_accuracy)}, output_dir / "accuracy.png", test_rows)
    if curves is not None:
        plot_curves({label: curves}, output_dir / "curves.png", {label: settings.train.loss})
    if variance is not None:
        grid = np.asarray(population.test_accuracy).reshape(tuple(settings.seeds.grid.values()))
        plot_variance(grid, variance, output_dir / "variance.png")
    if table is not None:
        plot_rows(table, output_dir / "rows.png", settings.seeds.trained())
    (output_dir / "error.json").unlink(missing_ok=True)


def _write_rows(population, data, settings, output_dir: Path, rows: RowResults | None):
    """rows.csv and rows_correct.npz (see `testrows`); returns the rows table, or None."""
    from gophernet_jax.testrows import rows_frame, why_no_table, write_rows

    rows = row_results(population, data, settings) if rows is None else rows
    if rows is None:
        return None
    reason = why_no_table(rows)
    if reason:
        log.info(f"rows.csv and rows.png not written: {reason}")
    table = None if reason else rows_frame(rows)
    write_rows(rows, table, output_dir)
    return table


def score(
    population: Population, data: Data, settings: Config, rows: RowResults | None = None
) -> dict[str, Any]:
    """The summary's statistics (fields of a `Summary`): spreads, the likely cause when half
    the seeds or more failed (`cause`), the ensemble against its seeds, for a grid where the
    variance comes from, and what the test rows explain (`rows`: the population's
    `testrows.row_results`, made here when not given)."""
    summary = summary_of(population, data, settings)
    features = data.train_set.x.shape[1]
    summary["cause"] = likely_cause(
        settings, len(data.train_set.x), features, population.diverged, population.collapsed
    )
    rows = row_results(population, data, settings) if rows is None else rows
    summary |= _test_rows(population, data, settings, rows, summary["test_accuracy"])
    if set(settings.seeds.varied()) & {"split", "noise"}:
        summary["ensemble"] = None  # the seeds were tested on different rows
    else:
        from gophernet_jax.inference import ensemble_report

        test = data.test_set
        ties, net = settings.report.ties, net_of(settings)
        summary["ensemble"] = ensemble_report(population.params, test.x, test.y, ties=ties, net=net)
    if design_of(settings):  # a whole grid: a slice's variance is the pooled population's
        from gophernet_jax.variance import variance_components

        grid = settings.seeds.grid
        values = np.asarray(population.test_accuracy).reshape(tuple(grid.values()))
        summary["variance"] = variance_components(values, tuple(grid))
    return summary


def _test_rows(population, data, settings, rows, accuracy: dict[str, Any]) -> dict[str, Any]:
    """summary.json's `test_set`, and in `accuracy` (in place) the intervals over seeds and
    rows and, where the split varies, over splits (Nadeau–Bengio)."""
    from gophernet_jax.testrows import corrected_section, split_varies, test_set_section

    if split_varies(settings) and design_of(settings):  # a slice of a design is not the design
        split = _draws(settings)["split"]
        sizes = len(data.train_set.x), len(data.test_set.x)
        values = np.asarray(population.test_accuracy, dtype=float)
        accuracy["corrected"] = corrected_section(values, split, *sizes, settings.report.resolution)
    if rows is None:
        return {"test_set": {"reason": why_not(settings, len(data.test_set.x))}}
    section, interval = test_set_section(rows)
    accuracy |= interval
    return {"test_set": section}


def _import_in_background(*modules: str) -> None:
    """Starts importing `modules` in a thread: JAX trains with the interpreter lock released,
    so the imports that scoring and writing need later (about 0.5 s) overlap the training.
    A failed import is left for the main thread to raise where the module is used."""

    def load() -> None:
        for name in modules:
            with contextlib.suppress(Exception):
                importlib.import_module(name)

    threading.Thread(target=load, name="imports", daemon=True).start()


def plotted(settings: Config) -> bool:
    """Does the job draw its plots? Not for one seed: a distribution of one value says
    nothing, and drawing costs a single run more than its training (curves.csv is written)."""
    return settings.seeds.trained() > 1


def job(settings: Config, output_dir: Path, job_num: int | None = None) -> Summary:
    """One run: train, score, write every file, report. Returns the summary (summary.json,
    written last as the mark of a finished job)."""
    started = time.perf_counter()
    # A summary.json from an earlier run of this folder would vouch for the files this
    # run is about to replace: until the new one is written, the folder holds no finished job.
    (output_dir / "summary.json").unlink(missing_ok=True)
    later = ["scipy.special", "gophernet_jax.statistics", "gophernet_jax.reporting", "gophernet_jax.store"]
    later += ["gophernet_jax.plots"] if plotted(settings) else []
    population, data, phases, chunk = run(settings, later)
    scored = time.perf_counter()
    with runtime.CompileCounter() as compiles:
        rows = row_results(population, data, settings)
        summary = score(population, data, settings, rows)
    sizes = _sizes(settings, data)
    phases["score"] = time.perf_counter() - scored
    phases["compilations"] += compiles.count
    phases["cache_hits"] += compiles.cache_hits
    written = time.perf_counter()
    write_outputs(settings, output_dir, population, data, summary.get("variance"), rows)
    timing = _timing(settings, phases)
    timing["phases"]["write"] = time.perf_counter() - written
    summary = Summary(
        **summary,
        pairing=pairing(settings, data, sizes),
        config=portable_config(settings),
        config_hash=config_hash(settings),
        job_num=job_num,  # the job's place in its sweep, for a report of a copied sweep folder
        **timing,
        chunk=chunk._asdict(),
        seconds=time.perf_counter() - started,
    )
    write_json(summary.to_json(), output_dir / "summary.json")
    _log_report(population, summary, settings, output_dir)
    return summary


def _timing(settings: Config, phases: dict[str, float]) -> dict[str, Any]:
    seed_epochs = settings.seeds.trained() * settings.train.epochs
    training = phases["compile"] + phases["train"]
    return {
        "phases": {k: phases[k] for k in ("load", "compile", "train", "score")},
        "compilations": phases["compilations"],
        "cache_hits": phases["cache_hits"],
        "compile_seconds": phases["compile"],
        "training_seconds": training,
        "seed_epochs_per_second": seed_epochs / phases["train"] if phases["train"] > 0 else None,
    }


def _log_report(population: Population, summary: Summary, settings: Config, output_dir: Path) -> None:
    seeds = settings.seeds
    log.info(format_report(population, summary, seeds.base, settings.report.interval, seeds.start))
    for line in format_cause(summary.cause):
        log.info(line)
    if settings.seeds.trained() > 1:
        from gophernet_jax.testrows import format_corrected, format_test_set

        for line in format_test_set(summary.test_set) + format_corrected(
            summary.test_accuracy.get("corrected")
        ):
            log.info(line)
    if settings.seeds.trained() > 1 and summary.ensemble is not None:
        from gophernet_jax.inference import format_ensemble

        log.info(format_ensemble(summary.ensemble))
    if summary.variance is not None:
        from gophernet_jax.variance import format_variance

        log.info(format_variance(summary.variance))
    log.info(f"results in {shown(output_dir)}")


def shown(path: Path) -> Path:
    """`path` relative to the working folder when it is inside it: logs hold no machine paths."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path
