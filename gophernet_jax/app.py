"""The Hydra application: config in, a trained seed population and its files out."""

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import jax
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gophernet_jax import config as config_module
from gophernet_jax.config import CONF_DIR, Config, ConfigError, validate
from gophernet_jax.dataset import DataError, Dataset, load_split
from gophernet_jax.model import Sizes
from gophernet_jax.reporting import format_spread, results_frame, write_csv, write_json
from gophernet_jax.statistics import summarize
from gophernet_jax.store import TrainedRun, save_run
from gophernet_jax.training import Population, train_population

config_module.register()


def run(settings: Config) -> tuple[Population, Dataset, Dataset, float]:
    """Loads the data and trains the configured population; returns it with the wall time."""
    jax.config.update("jax_enable_x64", settings.train.dtype == "float64")
    data = settings.data
    train_set, test_set = load_split(data.train, data.test, data.labels, padding_row=data.padding_row)
    sizes = Sizes(train_set.x.shape[1], settings.model.hidden, train_set.y.shape[1])
    start = time.perf_counter()
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
    )
    population = jax.block_until_ready(population)
    return population, train_set, test_set, time.perf_counter() - start


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


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    """Entry point of `python -m gophernet_jax`."""
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        settings = validate(cfg)
        population, train_set, test_set, seconds = run(settings)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweeper records the failed job and runs the others
        sys.exit(2)
    summary = summary_of(population, train_set, test_set, seconds, settings)
    write_csv(results_frame(population, settings.seeds.base), output_dir / "results.csv")
    write_json(summary, output_dir / "summary.json")
    seeds = np.arange(settings.seeds.count)
    config = dataclasses.asdict(settings)
    save_run(
        output_dir,
        TrainedRun(population.params, seeds, train_set.feature_names, train_set.class_names, config),
    )
    print(report(population, summary, settings.seeds.base))
    print(f"results in {output_dir}")
