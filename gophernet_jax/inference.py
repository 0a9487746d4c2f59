"""Using a trained population: one seed's predictions, the whole population's, and how the
population's ensemble compares with its single seeds.

The ensemble is every seed whose parameters are finite (a diverged seed has none to
offer). It predicts two ways: the class of the outputs averaged over seeds, and the
majority vote of the seeds' own classes. A class is the first column holding the row's
largest value, and accuracy is counted as `model.correct` counts it: a tie for the
largest value that includes the true class counts as correct.

The ensemble functions walk the seed axis in blocks (`BLOCK_OUTPUTS`), so a report on a
million seeds needs a few megabytes beyond the parameters themselves.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gophernet_jax.model import Params, correct, forward
from gophernet_jax.store import TrainedRun


class SeedError(ValueError):
    """A seed that a run does not hold, or a run with no seed to use; the message says which."""


class Prediction(NamedTuple):
    """Per-row predictions; each field has a leading row axis, floats in the params' dtype.

    For one seed, `predicted` and `vote` are its class, `agreement` is 1, `mean_output` its
    outputs and `vote_share` its class one-hot.
    """

    predicted: jax.Array  # (rows,) class of the mean output
    vote: jax.Array  # (rows,) class most seeds choose; ties to the lowest class index
    agreement: jax.Array  # (rows,) share of seeds whose own class is `predicted`
    mean_output: jax.Array  # (rows, classes) outputs averaged over seeds
    vote_share: jax.Array  # (rows, classes) share of seeds whose own class each class is


def _check_dtype(params: Params) -> None:
    if jnp.dtype(params.w_hidden.dtype) == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError("float64 params need jax_enable_x64: jax.config.update('jax_enable_x64', True)")


@jax.jit
def ensemble_outputs(params: Params, x: jax.Array) -> jax.Array:
    """Every seed's outputs, (seeds, rows, classes); `x` is cast to the params' dtype."""
    x = jnp.asarray(x, params.w_hidden.dtype)
    return jax.vmap(forward, in_axes=(0, None))(params, x)


def finite_seeds(params: Params) -> jax.Array:
    """Per seed: are all its parameters finite? Only these seeds join the ensemble."""
    finite = [jnp.all(jnp.isfinite(p), axis=tuple(range(1, p.ndim))) for p in params]
    return jnp.logical_and.reduce(jnp.stack(finite), axis=0)


#: Seeds × rows whose outputs the ensemble functions hold at once (12 MB for 3 classes in
#: float32): they walk the seed axis in blocks, so their memory does not grow with the seed count.
BLOCK_OUTPUTS = 2**20


def _whole(a: jax.Array) -> jax.Array:
    # A population trained on several devices comes back split along the seed axis, with
    # the split in its type; JAX refuses to slice such an axis at arbitrary seeds, so each
    # device takes a whole copy first (a no-op for arrays that are not split).
    sharding = jax.typeof(a).sharding
    if all(axis is None for axis in sharding.spec):
        return a
    return jax.sharding.reshard(a, jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec()))


def _seed_blocks(params: Params, x: jax.Array, y: jax.Array | None = None) -> dict[str, jax.Array]:
    """One pass over the seeds in blocks: the outputs summed over finite seeds, the finite
    seeds voting for each class, their number, and (with labels `y`) every seed's count of
    rows classified correctly."""
    params = Params(*map(_whole, params))
    seeds, rows = params.w_hidden.shape[0], x.shape[0]
    size = max(1, min(seeds, BLOCK_OUTPUTS // max(rows, 1)))
    classes = params.b_out.shape[-1]
    dtype = params.w_hidden.dtype

    def step(i, acc):
        # The last block is moved back to end at the last seed (every block has one shape);
        # `member` leaves out the seeds that the block before it already counted.
        first = jnp.asarray(i, jnp.int32) * size
        start = jnp.minimum(first, seeds - size)
        block = Params(*(jax.lax.dynamic_slice_in_dim(p, start, size) for p in params))
        outputs = jax.vmap(forward, in_axes=(0, None))(block, x)
        member = finite_seeds(block) & (start + jnp.arange(size, dtype=jnp.int32) >= first)
        own_class = jax.nn.one_hot(jnp.argmax(outputs, axis=-1), classes, dtype=jnp.int32)
        acc = dict(acc)
        acc["summed"] = acc["summed"] + jnp.sum(jnp.where(member[:, None, None], outputs, 0.0), axis=0)
        acc["votes"] = acc["votes"] + jnp.sum(
            own_class * member[:, None, None].astype(jnp.int32), axis=0, dtype=jnp.int32
        )
        acc["members"] = acc["members"] + jnp.sum(member, dtype=jnp.int32)
        if y is not None:
            counts = jnp.sum(correct(outputs, y), axis=-1, dtype=jnp.int32)
            acc["seeds"] = jax.lax.dynamic_update_slice_in_dim(acc["seeds"], counts, start, 0)
        return acc

    init = {
        "summed": jnp.zeros((rows, classes), dtype),
        "votes": jnp.zeros((rows, classes), jnp.int32),
        "members": jnp.zeros((), jnp.int32),
    }
    if y is not None:
        init["seeds"] = jnp.zeros_like(params.b_out[:, 0], jnp.int32)  # placed as the params are
    return jax.lax.fori_loop(0, -(-seeds // size), step, init)


def _votes(params: Params, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per row, the mean output over finite seeds, the seeds voting for each class, their number."""
    acc = _seed_blocks(params, x)
    return acc["summed"] / acc["members"].astype(acc["summed"].dtype), acc["votes"], acc["members"]


@jax.jit
def _ensemble(params: Params, x: jax.Array) -> Prediction:
    mean_output, votes, members = _votes(params, x)
    predicted = jnp.argmax(mean_output, axis=-1)
    share = votes.astype(mean_output.dtype) / members.astype(mean_output.dtype)
    agreement = jnp.take_along_axis(share, predicted[:, None], axis=-1)[:, 0]
    return Prediction(predicted, jnp.argmax(votes, axis=-1), agreement, mean_output, share)


def predict_ensemble(run: TrainedRun, x: np.ndarray) -> Prediction:
    """The population's predictions for the rows of `x` (rows, features).

    Raises:
      SeedError: if no seed of the run has finite parameters.
    """
    _check_dtype(run.params)
    if not np.asarray(finite_seeds(run.params)).any():
        raise SeedError("no seed of the run has finite parameters: every one diverged")
    return _ensemble(run.params, x)


def seed_position(run: TrainedRun, seed: int) -> int:
    """Where seed index `seed` sits on the run's seed axis, or a `SeedError`."""
    found = np.flatnonzero(np.asarray(run.seeds) == seed)
    if found.size == 0:
        low, high = int(np.min(run.seeds)), int(np.max(run.seeds))
        raise SeedError(f"seed {seed} is not in the run: it has seeds {low}..{high}")
    return int(found[0])


@jax.jit
def _one_seed(params: Params, x: jax.Array) -> Prediction:
    outputs = forward(params, jnp.asarray(x, params.w_hidden.dtype))
    predicted = jnp.argmax(outputs, axis=-1)
    one_hot = jax.nn.one_hot(predicted, outputs.shape[-1], dtype=outputs.dtype)
    return Prediction(predicted, predicted, jnp.ones(outputs.shape[0], outputs.dtype), outputs, one_hot)


def predict_seed(run: TrainedRun, x: np.ndarray, seed: int) -> Prediction:
    """Seed `seed`'s predictions for the rows of `x`: its class is the argmax of `forward`."""
    _check_dtype(run.params)
    i = seed_position(run, seed)
    return _one_seed(Params(*(p[i] for p in run.params)), x)


@jax.jit
def seed_correct(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """Each seed's count of rows classified correctly on (x, y), as `model.correct` counts
    them; over the row count, the accuracy that `results.csv` lists."""
    dtype = params.w_hidden.dtype
    return _seed_blocks(params, jnp.asarray(x, dtype), jnp.asarray(y, dtype))["seeds"]


def best_seed(run: TrainedRun, x: np.ndarray, y: np.ndarray) -> int:
    """The seed with the highest accuracy on the labelled rows (x, y); ties to the lowest
    seed index. A seed with non-finite parameters is chosen only if every seed has them."""
    _check_dtype(run.params)
    counts = np.where(np.asarray(finite_seeds(run.params)), np.asarray(seed_correct(run.params, x, y)), -1)
    order = np.lexsort((np.asarray(run.seeds), -counts))  # most rows correct, then lowest seed
    return int(run.seeds[order[0]])


@jax.jit
def _report_counts(params: Params, x: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
    x = jnp.asarray(x, params.w_hidden.dtype)
    y = jnp.asarray(y, params.w_hidden.dtype)
    acc = _seed_blocks(params, x, y)
    votes, members = acc["votes"], acc["members"]
    mean_output = acc["summed"] / members.astype(acc["summed"].dtype)
    predicted = jnp.argmax(mean_output, axis=-1)
    return {
        "mean_output": jnp.sum(correct(mean_output, y), dtype=jnp.int32),
        "vote": jnp.sum(correct(votes, y), dtype=jnp.int32),
        "seeds": acc["seeds"],
        "members": members,
        "agreeing": jnp.take_along_axis(votes, predicted[:, None], axis=-1)[:, 0],
    }


def _standing(count: int, seed_counts: np.ndarray) -> dict[str, float]:
    below, tied, n = int(np.sum(seed_counts < count)), int(np.sum(seed_counts == count)), seed_counts.size
    # Percentile rank with ties counted half (scipy's percentileofscore, kind="mean").
    return {
        "beats": below / n,
        "ties": tied / n,
        "beats_or_ties": (below + tied) / n,
        "percentile": 50 * (2 * below + tied) / n,
    }


def ensemble_report(
    params: Params, x: np.ndarray, y: np.ndarray, ties="strict"
) -> dict[str, Any]:  # TEMPORARY
    """How the ensemble of a population does on labelled rows (x, y), against its single seeds.

    Accuracies are exact fractions of rows (correct rows / rows, in float64); the single
    seeds are all of the population's, diverged ones included, as `results.csv` lists them.

    Returns:
      A JSON-ready dict: `members` (finite seeds in the ensemble), `rows`, `accuracy`
      (`mean_output`, `vote`), `single_seed` (`mean`, `min`, `median`, `max` accuracy),
      `mean_output_vs_seeds` and `vote_vs_seeds` (shares of seeds the ensemble `beats`,
      `ties`, `beats_or_ties`, and its `percentile` rank among them), and `agreement`: per
      row the share of ensemble seeds whose own class is the mean output's (`per_row`),
      with `unanimous_rows`, `mean` and `min`. With no finite seed, accuracies and
      agreement are None.
    """
    _check_dtype(params)
    counts = jax.device_get(_report_counts(params, x, y))
    rows, members = int(np.shape(x)[0]), int(counts["members"])
    seed_acc = counts["seeds"] / rows
    report = {
        "members": members,
        "rows": rows,
        "single_seed": {
            "mean": float(np.sum(counts["seeds"]) / (counts["seeds"].size * rows)),
            "min": float(np.min(seed_acc)),
            "median": float(np.median(seed_acc)),
            "max": float(np.max(seed_acc)),
        },
    }
    if members == 0:
        return {**report, "accuracy": {"mean_output": None, "vote": None}, "agreement": None}
    agreement = counts["agreeing"] / members
    return {
        **report,
        "accuracy": {"mean_output": int(counts["mean_output"]) / rows, "vote": int(counts["vote"]) / rows},
        "mean_output_vs_seeds": _standing(counts["mean_output"], counts["seeds"]),
        "vote_vs_seeds": _standing(counts["vote"], counts["seeds"]),
        "agreement": {
            "unanimous_rows": int(np.sum(counts["agreeing"] == members)),
            "mean": float(np.mean(agreement)),
            "min": float(np.min(agreement)),
            "per_row": [float(a) for a in agreement],
        },
    }


def format_ensemble(report: dict[str, Any]) -> str:
    """One line on the ensemble against its single seeds, as the training run prints it."""
    if report["agreement"] is None:
        return "ensemble: no seed has finite parameters"
    acc, standing = report["accuracy"], report["mean_output_vs_seeds"]
    return (
        f"ensemble of {report['members']} seeds: accuracy {acc['mean_output']:.4f} (mean output), "
        f"{acc['vote']:.4f} (vote); single seeds: mean {report['single_seed']['mean']:.4f}, "
        f"ensemble beats or ties {standing['beats_or_ties']:.0%} of them; "
        f"{report['agreement']['unanimous_rows']} of {report['rows']} rows unanimous"
    )
