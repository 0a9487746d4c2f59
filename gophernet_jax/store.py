"""Trained networks on disk: every seed's parameters in one `params.npz` per run.

The file holds the four `Params` arrays with a leading seed axis (float32 or float64, as
trained), the seed indices, and a JSON document (`meta`) with the feature and class
names and the validated config that made them. 1000 seeds of the 4-3-3 net: about 110 KB.
"""

import io
import json
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gophernet_jax.files import write_bytes
from gophernet_jax.model import ACTIVATIONS, ARTICLE, LOSSES, TIES, Net, Params

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
    # span in the run's dtype, {"min": [...], "span": [...], "dtype": "float32"}, to scale
    # new raw rows as the network saw them (see `inputs_for`; older runs lack "dtype").
    scaling: dict[str, Any] | None = None


def _arrays(params: Params) -> dict[str, np.ndarray]:
    # The first four by name; a deeper network's later hidden layers as w_deeper_0, b_deeper_0, ...
    arrays = {name: getattr(params, name) for name in Params._fields[:4]}
    for i, (w, b) in enumerate(zip(params.w_deeper, params.b_deeper)):
        arrays |= {f"w_deeper_{i}": w, f"b_deeper_{i}": b}
    return arrays


def _params(data) -> Params:
    deeper = sum(1 for name in data.files if name.startswith("w_deeper_"))
    layers = [(data[f"w_deeper_{i}"], data[f"b_deeper_{i}"]) for i in range(deeper)]
    return Params(*(data[name] for name in Params._fields[:4]), *map(tuple, zip(*layers)))


def save_run(run_dir: Path, run: TrainedRun) -> Path:
    """Writes `run` to `run_dir/params.npz` atomically; returns the path."""
    meta = {
        "feature_names": list(run.feature_names),
        "class_names": list(run.class_names),
        "config": run.config,
        "scaling": run.scaling,
    }
    buffer = io.BytesIO()
    np.savez(buffer, **_arrays(run.params), seed=np.asarray(run.seeds), meta=np.array(json.dumps(meta)))
    path = Path(run_dir) / PARAMS_FILE
    write_bytes(buffer.getvalue(), path)
    return path


def load_run(run_dir: str | Path) -> TrainedRun:
    """Reads a run folder's `params.npz`, or raises `StoreError` naming what is wrong."""
    run_dir = Path(run_dir)
    path = run_dir / PARAMS_FILE
    if not run_dir.is_dir():
        raise StoreError(f"{run_dir}: {'not a folder' if run_dir.exists() else 'no such folder'}")
    if not path.is_file():
        jobs = sorted(p.parent.name for p in run_dir.glob(f"*/{PARAMS_FILE}"))
        inside = (
            f"; it holds {len(jobs)} run folders (a sweep's jobs, or runs under it): "
            f"give one, as {run_dir / jobs[0]}"
            if jobs
            else ""
        )
        raise StoreError(f"{run_dir}: not a run folder (no {PARAMS_FILE}){inside}")
    try:
        with np.load(path, allow_pickle=False) as data:
            params = _params(data)
            seeds, meta = data["seed"], json.loads(str(data["meta"]))
        names = tuple(meta["feature_names"]), tuple(meta["class_names"])
        return TrainedRun(params, seeds, *names, meta["config"], meta.get("scaling"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise StoreError(f"{path}: not a params file: {type(e).__name__}: {e}") from None


def run_net(run: TrainedRun) -> Net:
    """The activation and loss `run`'s networks were trained with (`config_net`)."""
    return config_net(run.config)


def config_net(config: dict[str, Any]) -> Net:
    """The activation and loss a saved config names: its `model.activation` and
    `train.loss`, the article's where the config does not say (runs made before the network
    family); a `StoreError` for an unknown one."""
    activation = config.get("model", {}).get("activation", ARTICLE.activation)
    loss = config.get("train", {}).get("loss", ARTICLE.loss)
    if activation not in ACTIVATIONS or loss not in LOSSES:
        raise StoreError(f"the run's model.activation {activation!r} or train.loss {loss!r} is unknown")
    return Net(activation, loss)


def run_ties(run: TrainedRun) -> str:
    """The tie rule `run` was scored with: its config's `report.ties`, "strict" where the
    config does not say (as the default is); a `StoreError` for an unknown rule."""
    ties = run.config.get("report", {}).get("ties", "strict")
    if ties not in TIES:
        choices = ", ".join(TIES)
        raise StoreError(f"the run's report.ties is {ties!r}, not one of {choices}: choose one with --ties")
    return ties


def class_column(run: TrainedRun) -> str | None:
    """The class column of the raw table `run` was trained on (`data.label`, one column of
    class names), under which rows to classify may carry their labels; None for a run on
    one-hot class columns (the article's files, or `data.label` as a list of several)."""
    data = run.config.get("data", {})
    label = data.get("label")
    if isinstance(label, list) and len(label) == 1:  # saved before the config made it the name
        label = label[0]
    return label if data.get("path") is not None and isinstance(label, str) else None


@jax.jit
def _minmax_apply(x: jax.Array, low: jax.Array, span: jax.Array) -> jax.Array:
    # The very XLA operations `splits.minmax_scale` applies to a split's test part: XLA's
    # CPU float32 division is not always correctly rounded, so NumPy's can differ by an ulp.
    return (x - low) / span


def inputs_for(run: TrainedRun, x: np.ndarray) -> np.ndarray:
    """Rows of features as `run`'s networks saw them in training.

    The article's files are already scaled, so their rows pass as they are. A run on a raw
    table (`data.path`) saw min-max scaled features: new raw rows are cast to the run's
    dtype and scaled with the stored training minimum and span, bit for bit as training
    scaled its test part. A run saved without the scaling's dtype (before it was stored)
    is scaled in its params' dtype. Runs whose seeds had different splits or noise have
    no single scaling, and are refused with a `StoreError`.

    Raises:
      StoreError: for a run with no single scaling of raw rows.
      ValueError: for a float64 run while jax_enable_x64 is off.
    """
    if run.scaling is not None:
        dtype = jnp.dtype(run.scaling.get("dtype", run.params.w_hidden.dtype))
        if dtype == jnp.float64 and not jax.config.jax_enable_x64:
            raise ValueError("a float64 run needs jax_enable_x64: jax.config.update('jax_enable_x64', True)")
        low, span = (jnp.asarray(np.asarray(run.scaling[k], np.float64), dtype) for k in ("min", "span"))
        return np.asarray(_minmax_apply(jnp.asarray(np.asarray(x, np.float64), dtype), low, span))
    if run.config.get("data", {}).get("path") is not None:
        raise StoreError(
            "this run's seeds were trained on different splits or noisy features of a raw table, "
            "each scaled its own way: predict needs a run with one noise-free split (seeds.vary=[init])"
        )
    return np.asarray(x)
