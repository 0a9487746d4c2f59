"""Trained networks on disk: every seed's parameters in one `params.npz` per run.

The file holds the four `Params` arrays with a leading seed axis (float32 or float64, as
trained), the seed indices, and a JSON document (`meta`) with the feature and class
names and the validated config that made them. 1000 seeds of the 4-3-3 net: about 110 KB.
"""

import io
import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from gophernet_jax.model import Params
from gophernet_jax.reporting import write_bytes

PARAMS_FILE = "params.npz"


class StoreError(ValueError):
    """A run folder or params file that cannot be used; the message names it."""


class TrainedRun(NamedTuple):
    """A run's trained population, as saved."""

    params: Params  # leading seed axis
    seeds: np.ndarray  # seed index i of each row (fold_in(key(base), i))
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    config: dict[str, Any]
    # For a raw table split once without noise: the training part's column minimum and
    # span, {"min": [...], "span": [...]}, to scale new raw rows as the network saw them.
    scaling: dict[str, list[float]] | None = None


def save_run(run_dir: Path, run: TrainedRun) -> Path:
    """Writes `run` to `run_dir/params.npz` atomically; returns the path."""
    meta = {
        "feature_names": list(run.feature_names),
        "class_names": list(run.class_names),
        "config": run.config,
        "scaling": run.scaling,
    }
    buffer = io.BytesIO()
    np.savez(buffer, **run.params._asdict(), seed=np.asarray(run.seeds), meta=np.array(json.dumps(meta)))
    path = Path(run_dir) / PARAMS_FILE
    write_bytes(buffer.getvalue(), path)
    return path


def load_run(run_dir: str | Path) -> TrainedRun:
    """Reads a run folder's `params.npz`, or raises `StoreError` naming what is wrong."""
    run_dir = Path(run_dir)
    path = run_dir / PARAMS_FILE
    if not run_dir.is_dir():
        raise StoreError(f"{run_dir}: not a folder")
    if not path.is_file():
        raise StoreError(f"{run_dir}: not a run folder (no {PARAMS_FILE})")
    try:
        with np.load(path, allow_pickle=False) as data:
            params = Params(*(data[name] for name in Params._fields))
            seeds, meta = data["seed"], json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError) as e:
        raise StoreError(f"{path}: not a params file: {e}") from None
    names = tuple(meta["feature_names"]), tuple(meta["class_names"])
    return TrainedRun(params, seeds, *names, meta["config"], meta.get("scaling"))


def inputs_for(run: TrainedRun, x: np.ndarray) -> np.ndarray:
    """Rows of features as `run`'s networks saw them in training.

    The article's files are already scaled, so their rows pass as they are. A run on a raw
    table (`data.path`) saw min-max scaled features: new raw rows are scaled with the
    stored training minimum and span. Runs whose seeds had different splits or noise have
    no single scaling, and are refused with a `StoreError`.
    """
    if run.scaling is not None:
        return (np.asarray(x, dtype=float) - np.asarray(run.scaling["min"])) / np.asarray(run.scaling["span"])
    if run.config.get("data", {}).get("path") is not None:
        raise StoreError(
            "this run's seeds were trained on different splits or noisy features of a raw table, "
            "each scaled its own way: predict needs a run with one noise-free split (seeds.vary=[init])"
        )
    return np.asarray(x)
