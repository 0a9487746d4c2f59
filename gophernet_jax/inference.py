"""Using a trained population: one seed's predictions, the whole population's, and how the
population's ensemble compares with its single seeds.

The ensemble is every seed whose parameters are finite (a diverged seed has none to
offer). It predicts two ways: the class of the outputs averaged over seeds, and the
majority vote of the seeds' own classes. A seed's own class is `model.predicted_class`:
a seed whose largest outputs tie on a row casts no vote there. A row whose largest mean
output, or whose most votes, are shared by two or more classes is tied: its class is -1,
never silently the first of the tied classes.

Every function that scores rows takes `ties` (`model.TIES`), the rule of `model.correct`:
"strict" (the default) counts a row as correct only when the true class strictly beats
every other class, so a tied row is wrong; "article" counts a tie that includes the true
class as correct. The vote is scored the same way on the seeds' vote counts.

The ensemble functions walk the seed axis in blocks (`BLOCK_OUTPUTS`), so a report on a
million seeds needs a few megabytes beyond the parameters themselves.
"""

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gophernet_jax.model import ARTICLE, Net, Params, correct, forward, predicted_class, tied
from gophernet_jax.store import TrainedRun, inputs_for, run_net


class SeedError(ValueError):
    """A seed that a run does not hold, or a run with no seed to use; the message says which."""


class Prediction(NamedTuple):
    """Per-row predictions; each field has a leading row axis, floats in the params' dtype.

    A class is an index into the run's classes, or -1 on a tied row: `predicted` is -1
    where the largest mean output is shared (`tied`), `vote` where the most votes are
    (`vote_tied`; also where every seed ties, so none votes). For one seed, `predicted`
    and `vote` are its own class (`model.predicted_class`), `agreement` is 1, `mean_output`
    its outputs, `vote_share` its class one-hot (all zero where it ties), and `vote_tied`
    is `tied`.
    """

    predicted: jax.Array  # (rows,) int: class of the mean output, -1 where `tied`
    vote: jax.Array  # (rows,) int: class most seeds choose, -1 where `vote_tied`
    agreement: jax.Array  # (rows,) share of seeds whose own class is `predicted` (tied rows: that tie)
    mean_output: jax.Array  # (rows, classes) outputs averaged over seeds
    vote_share: jax.Array  # (rows, classes) share of seeds whose own class each class is
    tied: jax.Array  # (rows,) bool: the largest mean output is shared by two or more classes
    vote_tied: jax.Array  # (rows,) bool: the most votes are shared by two or more classes


def _check_dtype(params: Params) -> None:
    if jnp.dtype(params.w_hidden.dtype) == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError("float64 params need jax_enable_x64: jax.config.update('jax_enable_x64', True)")


def finite_seeds(params: Params) -> jax.Array:
    """Per seed: are all its parameters finite? Only these seeds join the ensemble."""
    finite = [jnp.all(jnp.isfinite(p), axis=tuple(range(1, p.ndim))) for p in jax.tree.leaves(params)]
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


def _seed_blocks(
    params: Params, x: jax.Array, y: jax.Array | None = None, ties: str = "strict", net: Net = ARTICLE
) -> dict[str, jax.Array]:
    """One pass over the seeds in blocks: the outputs summed over finite seeds, the finite
    seeds voting for each class (a seed that ties on a row does not vote there), their
    number, and (with labels `y`) every seed's count of rows correct under `ties`."""
    params = jax.tree.map(_whole, params)
    seeds, rows = params.w_hidden.shape[0], x.shape[0]
    size = max(1, min(seeds, BLOCK_OUTPUTS // max(rows, 1)))
    classes = params.b_out.shape[-1]
    dtype = params.w_hidden.dtype

    def step(i, acc):
        # The last block is moved back to end at the last seed (every block has one shape);
        # `member` leaves out the seeds that the block before it already counted.
        first = jnp.asarray(i, jnp.int32) * size
        start = jnp.minimum(first, seeds - size)
        block = jax.tree.map(lambda p: jax.lax.dynamic_slice_in_dim(p, start, size), params)
        outputs = jax.vmap(forward, in_axes=(0, None, None))(block, x, net)
        member = finite_seeds(block) & (start + jnp.arange(size, dtype=jnp.int32) >= first)
        own_class = jax.nn.one_hot(predicted_class(outputs), classes, dtype=jnp.int32)  # -1: all zero
        acc = dict(acc)
        acc["summed"] = acc["summed"] + jnp.sum(jnp.where(member[:, None, None], outputs, 0.0), axis=0)
        acc["votes"] = acc["votes"] + jnp.sum(
            own_class * member[:, None, None].astype(jnp.int32), axis=0, dtype=jnp.int32
        )
        acc["members"] = acc["members"] + jnp.sum(member, dtype=jnp.int32)
        if y is not None:
            counts = jnp.sum(correct(outputs, y, ties), axis=-1, dtype=jnp.int32)
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


class _Classes(NamedTuple):
    mean_output: jax.Array  # (rows, classes)
    votes: jax.Array  # (rows, classes) int32: finite seeds whose own class each class is
    members: jax.Array  # () int32: finite seeds
    predicted: jax.Array  # (rows,) class of the mean output, -1 where tied
    vote: jax.Array  # (rows,) class with the most votes, -1 where that count is shared
    agreeing: jax.Array  # (rows,) int32: seeds whose own class is `predicted` (tied rows: that tie)


def _classes(acc: dict[str, jax.Array]) -> _Classes:
    """The ensemble's classes from `_seed_blocks`' sums."""
    summed, votes, members = acc["summed"], acc["votes"], acc["members"]
    mean_output = summed / members.astype(summed.dtype)
    predicted = predicted_class(mean_output)
    abstained = members - jnp.sum(votes, axis=-1, dtype=jnp.int32)  # seeds tied on the row
    chosen = jnp.take_along_axis(votes, jnp.maximum(predicted, 0)[:, None], axis=-1)[:, 0]
    agreeing = jnp.where(predicted < 0, abstained, chosen)
    return _Classes(mean_output, votes, members, predicted, predicted_class(votes), agreeing)


def vote_correct(votes: jax.Array, y: jax.Array, ties: str = "strict") -> jax.Array:
    """Per row: does the vote count as correct? Under "strict" the true class must have
    strictly the most votes; under "article" a share of the most is enough.

    `votes` (rows, classes) are vote counts or shares; counts are compared as floats of
    `y`'s dtype, exact up to 2**24 seeds in float32.
    """
    return correct(votes.astype(y.dtype), y, ties)


@partial(jax.jit, static_argnames="net")
def _ensemble(params: Params, x: jax.Array, net: Net = ARTICLE) -> Prediction:
    c = _classes(_seed_blocks(params, jnp.asarray(x, params.w_hidden.dtype), net=net))
    members = c.members.astype(c.mean_output.dtype)
    return Prediction(
        predicted=c.predicted,
        vote=c.vote,
        agreement=c.agreeing.astype(members.dtype) / members,
        mean_output=c.mean_output,
        vote_share=c.votes.astype(members.dtype) / members,
        tied=c.predicted < 0,
        vote_tied=c.vote < 0,
    )


def predict_ensemble(run: TrainedRun, x: np.ndarray) -> Prediction:
    """The population's predictions for the rows of `x` (rows, features), as the table
    holds them: a raw-table run scales them as its training did (`store.inputs_for`); cast
    to the params' dtype.

    Raises:
      SeedError: if no seed of the run has finite parameters.
      StoreError: for a run whose seeds were scaled each their own way (`inputs_for`).
    """
    _check_dtype(run.params)
    if not np.asarray(finite_seeds(run.params)).any():
        raise SeedError("no seed of the run has finite parameters: every one diverged")
    return _ensemble(run.params, inputs_for(run, x), run_net(run))


def seed_position(run: TrainedRun, seed: int) -> int:
    """Where seed index `seed` sits on the run's seed axis, or a `SeedError`."""
    found = np.flatnonzero(np.asarray(run.seeds) == seed)
    if found.size == 0:
        low, high = int(np.min(run.seeds)), int(np.max(run.seeds))
        raise SeedError(f"seed {seed} is not in the run: it has seeds {low}..{high}")
    return int(found[0])


@partial(jax.jit, static_argnames="net")
def _one_seed(params: Params, x: jax.Array, net: Net = ARTICLE) -> Prediction:
    outputs = forward(params, jnp.asarray(x, params.w_hidden.dtype), net)
    predicted = predicted_class(outputs)
    one_hot = jax.nn.one_hot(predicted, outputs.shape[-1], dtype=outputs.dtype)  # -1: all zero
    is_tied = tied(outputs)
    ones = jnp.ones(outputs.shape[0], outputs.dtype)
    return Prediction(predicted, predicted, ones, outputs, one_hot, is_tied, is_tied)


def predict_seed(run: TrainedRun, x: np.ndarray, seed: int) -> Prediction:
    """Seed `seed`'s predictions for the rows of `x` (as `predict_ensemble` takes them):
    its class is the argmax of `forward`, or -1 where its largest outputs tie. A `SeedError`
    for a seed the run does not hold, or one that diverged (non-finite parameters)."""
    _check_dtype(run.params)
    i = seed_position(run, seed)
    if not all(np.isfinite(np.asarray(p[i])).all() for p in jax.tree.leaves(run.params)):
        raise SeedError(
            f"seed {seed} diverged in training (its parameters are not finite): it predicts no class; "
            "the ensemble leaves such seeds out"
        )
    return _one_seed(jax.tree.map(lambda p: p[i], run.params), inputs_for(run, x), run_net(run))


@partial(jax.jit, static_argnames=("ties", "net"))
def seed_correct(
    params: Params, x: jax.Array, y: jax.Array, ties: str = "strict", net: Net = ARTICLE
) -> jax.Array:
    """Each seed's count of rows classified correctly on (x, y), as `model.correct` counts
    them under `ties`; over the row count, the accuracy that `results.csv` lists for a run
    scored with the same rule."""
    dtype = params.w_hidden.dtype
    return _seed_blocks(params, jnp.asarray(x, dtype), jnp.asarray(y, dtype), ties, net)["seeds"]


def best_seed(run: TrainedRun, x: np.ndarray, y: np.ndarray, ties: str = "strict") -> int:
    """The seed with the highest accuracy under `ties` on the labelled rows (x, y), `x` as
    `predict_ensemble` takes it; ties of accuracy go to the lowest seed index. A seed with
    non-finite parameters is chosen only if every seed has them."""
    return best_seed_and_rows(run, x, y, ties)[0]


def best_seed_and_rows(
    run: TrainedRun, x: np.ndarray, y: np.ndarray, ties: str = "strict"
) -> tuple[int, int]:
    """`best_seed`, and the count of rows it classifies correctly, from one scoring of the
    population."""
    _check_dtype(run.params)
    correct_rows = np.asarray(seed_correct(run.params, inputs_for(run, x), y, ties, run_net(run)))
    counts = np.where(np.asarray(finite_seeds(run.params)), correct_rows, -1)
    best = int(np.lexsort((np.asarray(run.seeds), -counts))[0])  # most rows correct, then lowest seed
    return int(run.seeds[best]), int(correct_rows[best])


@partial(jax.jit, static_argnames=("ties", "net"))
def _report_counts(params: Params, x: jax.Array, y: jax.Array, ties: str, net: Net) -> dict[str, jax.Array]:
    x = jnp.asarray(x, params.w_hidden.dtype)
    y = jnp.asarray(y, params.w_hidden.dtype)
    acc = _seed_blocks(params, x, y, ties, net)
    c = _classes(acc)
    return {
        "mean_output": jnp.sum(correct(c.mean_output, y, ties), dtype=jnp.int32),
        "vote": jnp.sum(vote_correct(c.votes, y, ties), dtype=jnp.int32),
        "tied_mean_output": jnp.sum(c.predicted < 0, dtype=jnp.int32),
        "tied_vote": jnp.sum(c.vote < 0, dtype=jnp.int32),
        "seeds": acc["seeds"],
        "members": c.members,
        "agreeing": c.agreeing,
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
    params: Params, x: np.ndarray, y: np.ndarray, ties: str = "strict", net: Net = ARTICLE
) -> dict[str, Any]:
    """How the ensemble of a population does on labelled rows (x, y), against its single seeds.

    Every row is scored under `ties` (`model.TIES`): the ensemble's mean output and vote as
    much as each single seed. Accuracies are exact fractions of rows (correct rows / rows,
    in float64); the single seeds are all of the population's, diverged ones included, as
    `results.csv` lists them.

    Returns:
      A JSON-ready dict: `ties` (the rule), `members` (finite seeds in the ensemble),
      `rows`, `accuracy` (`mean_output`, `vote`), `tied_rows` (`mean_output`: rows whose
      largest mean output is shared; `vote`: rows whose most votes are), `single_seed`
      (`mean`, `min`, `median`, `max` accuracy), `mean_output_vs_seeds` and
      `vote_vs_seeds` (shares of seeds the ensemble `beats`, `ties`, `beats_or_ties`, and
      its `percentile` rank among them), and `agreement`: per row the share of ensemble
      seeds whose own class is the mean output's (on a tied row: the seeds that tie too;
      `per_row`), with `unanimous_rows`, `mean` and `min`. With no finite seed,
      accuracies, tied rows and agreement are None.
    """
    _check_dtype(params)
    counts = jax.device_get(_report_counts(params, x, y, ties, net))
    rows, members = int(np.shape(x)[0]), int(counts["members"])
    seed_acc = counts["seeds"] / rows
    report = {
        "ties": ties,
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
        nothing = {"mean_output": None, "vote": None}
        return {**report, "accuracy": nothing, "tied_rows": nothing, "agreement": None}
    agreement = counts["agreeing"] / members
    return {
        **report,
        "accuracy": {"mean_output": int(counts["mean_output"]) / rows, "vote": int(counts["vote"]) / rows},
        "tied_rows": {"mean_output": int(counts["tied_mean_output"]), "vote": int(counts["tied_vote"])},
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
    acc, standing, tied_rows = report["accuracy"], report["mean_output_vs_seeds"], report["tied_rows"]
    tied_note = ""
    if tied_rows["mean_output"] or tied_rows["vote"]:
        tied_note = f", {tied_rows['mean_output']} rows tied (mean output), {tied_rows['vote']} (vote)"
    single = report["single_seed"]["mean"]
    return (
        f"ensemble of {report['members']} seeds: accuracy {acc['mean_output']:.4f} (mean output), "
        f"{acc['vote']:.4f} (vote), ties {report['ties']}{tied_note}; single seeds: mean {single:.4f}, "
        f"ensemble beats or ties {standing['beats_or_ties']:.0%} of them; "
        f"{report['agreement']['unanimous_rows']} of {report['rows']} rows unanimous"
    )
