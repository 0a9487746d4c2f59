"""The Hydra application: config in, a trained seed population and its files out."""

import contextlib
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import hydra
import jax
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gophernet_jax import config as config_module
from gophernet_jax import progress, runtime
from gophernet_jax.config import CONF_DIR, Config, ConfigError, validate
from gophernet_jax.dataset import DataError, Dataset, load_split
from gophernet_jax.inference import ensemble_report, format_ensemble
from gophernet_jax.model import Sizes
from gophernet_jax.plots import curve_quantiles, plot_accuracy, plot_curves, plot_variance
from gophernet_jax.reporting import format_spread, results_frame, write_csv, write_json
from gophernet_jax.splits import load_table, make_split, minmax_fit
from gophernet_jax.statistics import summarize
from gophernet_jax.store import TrainedRun, save_run
from gophernet_jax.training import Population, RawSplits, curve_epochs, seed_indices, train_population
from gophernet_jax.variance import format_variance, variance_components

config_module.register()


class Data(NamedTuple):
    """What a run trains on: the training and test sets (split 0 of a raw table), the raw
    table when seeds draw their own split or noise inside the program, and the scaling of
    raw rows when there is one split without noise."""

    train_set: Dataset
    test_set: Dataset
    raw: RawSplits | None = None
    scaling: dict[str, list[float]] | None = None


def load_data(settings: Config) -> Data:
    """Reads the article's files, or a raw table and its first split (see `Data`)."""
    data = settings.data
    if data.path is None:
        return Data(*load_split(data.train, data.test, data.labels, padding_row=data.padding_row))
    table = load_table(data.path, data.label)
    raw = RawSplits(table, data.test_fraction, data.split_seed, data.noise_seed, data.noise)
    options = {"test_fraction": data.test_fraction, "noise": data.noise, "dtype": settings.train.dtype}
    keys = (jax.random.fold_in(jax.random.key(seed), 0) for seed in (data.split_seed, data.noise_seed))
    first = jax.jit(lambda split_key, noise_key: make_split(table, split_key, noise_key, **options))(*keys)
    names = (table.feature_names, table.class_names)
    train_set = Dataset(np.asarray(first.x_train), np.asarray(first.y_train), *names)
    test_set = Dataset(np.asarray(first.x_test), np.asarray(first.y_test), *names)
    if settings.seeds.splits or set(settings.seeds.vary) - {"init"}:
        return Data(train_set, test_set, raw)
    if data.noise:
        return Data(train_set, test_set)
    low, span = minmax_fit(table.x[np.asarray(first.train_idx)])  # as minmax_scale fitted it
    return Data(
        train_set, test_set, scaling={"min": np.asarray(low).tolist(), "span": np.asarray(span).tolist()}
    )


def run(settings: Config) -> tuple[Population, Data, float]:
    """Loads the data and trains the configured population; returns it with the wall time."""
    jax.config.update("jax_enable_x64", settings.train.dtype == "float64")
    data = load_data(settings)
    train_set, test_set, raw = data.train_set, data.test_set, data.raw
    sizes = Sizes(train_set.x.shape[1], settings.model.hidden, train_set.y.shape[1])
    start = time.perf_counter()
    count, epochs = settings.seeds.count, settings.train.epochs
    show = progress.wanted(settings.runtime.progress)
    with progress.Progress(count * epochs) if show else contextlib.nullcontext():
        population = _train(settings, train_set, test_set, raw, sizes, show)
    seconds = time.perf_counter() - start
    # Accuracy is a count of rows over the row count: store the exact fraction, in float64.
    population = population._replace(
        train_accuracy=_exact_fraction(population.train_accuracy, len(train_set.x)),
        test_accuracy=_exact_fraction(population.test_accuracy, len(test_set.x)),
    )
    return population, data, seconds


def _train(
    settings: Config, train_set: Dataset, test_set: Dataset, raw: RawSplits | None, sizes: Sizes, show: bool
) -> Population:
    population = train_population(
        settings.seeds.base,
        settings.seeds.count,
        sizes,
        (train_set.x, train_set.y),
        (test_set.x, test_set.y),
        epochs=settings.train.epochs,
        learning_rate=settings.optimizer.learning_rate,
        rule=settings.train.rule,
        optimizer=settings.optimizer.name,
        dtype=settings.train.dtype,
        chunk_size=settings.train.chunk_size,
        record_every=settings.report.curve_every,
        progress=show,
        raw=raw,
        vary=tuple(settings.seeds.vary),
        grid_splits=settings.seeds.splits,
    )
    return jax.block_until_ready(population)


def _exact_fraction(accuracy: jax.Array, rows: int) -> np.ndarray:
    return np.round(np.asarray(accuracy, dtype=np.float64) * rows) / rows


def summary_of(
    population: Population, train_set: Dataset, test_set: Dataset, seconds: float, settings: Config
) -> dict[str, Any]:
    """What `summary.json` holds: spreads of both accuracies, losses, divergence, speed, config."""
    count, diverged = population.final_loss.shape[0], int(np.sum(population.diverged))
    epochs = settings.train.epochs
    return {
        "test_accuracy": {**summarize(population.test_accuracy), "diverged": diverged},
        "train_accuracy": summarize(population.train_accuracy),
        "final_loss": {k: v for k, v in summarize(population.final_loss).items() if k != "histogram"},
        "diverged": diverged,
        "test_rows": int(test_set.x.shape[0]),
        "train_rows": int(train_set.x.shape[0]),
        "seconds": seconds,
        "seed_epochs_per_second": count * epochs / seconds,
        "config": dataclasses.asdict(settings),
    }


def report(population: Population, summary: dict[str, Any], base: int) -> str:
    """The lines printed at the end of a run: the article's line for one seed, a table for many."""
    if summary["test_accuracy"]["count"] == 1:
        acc = float(population.test_accuracy[0])
        flag = "  (diverged)" if summary["diverged"] else ""
        return f"Accuracy = {acc:0.2f}  (seed 0 of base seed {base}, {summary['test_rows']} test rows){flag}"
    return format_spread(summary, summary["test_rows"])


def config_hash(settings: Config) -> str:
    """Identifies a job's configuration: a sweep run again skips jobs whose hash finished."""
    text = json.dumps(dataclasses.asdict(settings), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def finished_earlier(output_dir: Path, digest: str) -> bool:
    """Did a job with this configuration already finish in this folder? summary.json is
    written last, so its presence means every other file is complete."""
    summary = output_dir / "summary.json"
    return summary.is_file() and json.loads(summary.read_text()).get("config_hash") == digest


def write_outputs(
    settings: Config, output_dir: Path, population: Population, data: Data, summary: dict[str, Any]
) -> None:
    """Every file of a finished job; summary.json last, as the mark of a complete job."""
    train_set, test_set = data.train_set, data.test_set
    results = results_frame(population, settings.seeds.base)
    if settings.data.path is not None:  # which draw of each source every seed had
        sources = seed_indices(settings.seeds.count, settings.seeds.vary, settings.seeds.splits)
        for i, (source, index) in enumerate(sources.items()):
            results.insert(1 + i, f"{source}_seed", index)
    write_csv(results, output_dir / "results.csv")
    config = dataclasses.asdict(settings)
    seeds = np.arange(settings.seeds.count)
    names = train_set.feature_names, train_set.class_names
    run = TrainedRun(population.params, seeds, *names, config, data.scaling)
    save_run(output_dir, run)
    label = f"{settings.train.rule}, lr {settings.optimizer.learning_rate:g}, hidden {settings.model.hidden}"
    plot_accuracy({label: np.asarray(population.test_accuracy)}, output_dir / "accuracy.png", len(test_set.x))
    if population.curves is not None:
        epochs = curve_epochs(settings.train.epochs, settings.report.curve_every)
        curves = curve_quantiles(epochs, population.curves.loss, population.curves.test_accuracy)
        write_csv(curves, output_dir / "curves.csv")
        plot_curves({label: curves}, output_dir / "curves.png")
    if "variance" in summary:
        grid = np.asarray(population.test_accuracy).reshape(settings.seeds.splits, -1)
        plot_variance(grid, summary["variance"], output_dir / "variance.png")
    (output_dir / "error.json").unlink(missing_ok=True)
    write_json(summary, output_dir / "summary.json")


def job(settings: Config, output_dir: Path) -> None:
    """One run: train, score, write every file, print the report."""
    with runtime.CompileCounter() as compiles:
        population, data, seconds = run(settings)
        train_set, test_set = data.train_set, data.test_set
        summary = summary_of(population, train_set, test_set, seconds, settings)
        if settings.seeds.splits or set(settings.seeds.vary) & {"split", "noise"}:
            summary["ensemble"] = None  # the seeds were tested on different rows
        else:
            summary["ensemble"] = ensemble_report(population.params, test_set.x, test_set.y)
        if settings.seeds.splits:
            grid = np.asarray(population.test_accuracy).reshape(settings.seeds.splits, -1)
            summary["variance"] = variance_components(grid)
    summary |= {"compilations": compiles.count, "compile_seconds": compiles.seconds}
    summary["config_hash"] = config_hash(settings)
    write_outputs(settings, output_dir, population, data, summary)
    print(report(population, summary, settings.seeds.base))
    if settings.seeds.count > 1 and summary["ensemble"] is not None:
        print(format_ensemble(summary["ensemble"]))
    if "variance" in summary:
        print(format_variance(summary["variance"]))
    print(f"results in {output_dir}")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    """Entry point of `python -m gophernet_jax`.

    In a multirun a failing job writes `error.json` and returns, so that Hydra runs the
    other jobs and the sweep report lists it; the sweep then exits non-zero.
    """
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        settings = validate(cfg)
        runtime.configure(settings.runtime.ynn_fusion, settings.runtime.compilation_cache)
        if multirun and finished_earlier(output_dir, config_hash(settings)):
            print(f"skipped: this configuration already finished in {output_dir}")
            return
        job(settings, output_dir)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        if not multirun:
            sys.exit(2)
        write_json({"status": "failed", "error": str(e)}, output_dir / "error.json")
    except Exception as e:
        if not multirun:
            raise  # a bug, not a user mistake: the traceback is what a developer needs
        message = f"{type(e).__name__}: {e}".splitlines()[0]
        print(f"error: {message}", file=sys.stderr)
        write_json({"status": "failed", "error": message}, output_dir / "error.json")
