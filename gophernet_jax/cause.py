"""Why a population failed: when at least half the seeds collapse or diverge, the likely
cause and its fix in one line, from what the job knows (its settings, the rows one step
sums over, which seeds failed). Nothing is trained again to find out.

The causes, in the order they are tried:
- divergence: most failed seeds' loss went non-finite, so the step is too large;
- a summed loss: `train.loss=sse` sums over the rows, so the learning rate is a step of
  rate × rows on the mean (the article's 0.3 on 120 rows is 36);
- saturation: U[0, 1) weights on a layer of 16 or more inputs saturate its units;
- otherwise no cause is named, only the keys to try.
"""

from typing import NamedTuple

import numpy as np

#: The step on the mean loss that the article's rate makes: 0.3 on a sum over its 120 rows.
ARTICLE_STEP = 0.3 * 120
#: Above this step on the mean (rate × rows summed), a summed loss is named as the cause.
#: Wine collapses at 1 × 142 rows and trains at 0.3 × 142 (README, `+sweep=lr data=wine`).
SUMMED_STEP = 100.0
#: From this many inputs on, U[0, 1) weights saturate a layer (README, "Your own network").
SATURATING_FAN_IN = 16
#: What the report suggests instead, as a user types it.
MLP = "model=mlp (cross-entropy, mean over rows, Adam 0.01)"


class Cause(NamedTuple):
    """The likely cause of a failed population, as summary.json records it.

    kind: "divergence", "summed_loss", "saturation" or "unknown".
    seeds: how many seeds collapsed or diverged.
    line: the report's line, the cause and the fix, naming config keys as a user types them.
    """

    kind: str
    seeds: int
    line: str


def likely_cause(
    settings: "Config",  # noqa: F821
    rows: int,
    features: int,
    diverged: np.ndarray,
    collapsed: np.ndarray,
) -> Cause | None:
    """The likely cause when at least half the seeds collapsed or diverged, else None.

    Args:
      settings: the job's validated `config.Config`.
      rows: the training rows; a mini-batch's loss sums over `train.batch_size` of them.
      features: the input features (the first layer's inputs).
      diverged, collapsed: per seed, as `training.Population` holds them.

    Returns:
      A `Cause`, or None for a population of which fewer than half the seeds failed.
    """
    diverged, collapsed = np.asarray(diverged, bool), np.asarray(collapsed, bool)
    failed, seeds = int(np.sum(diverged | collapsed)), diverged.size
    if seeds == 0 or 2 * failed < seeds:
        return None
    n_diverged = int(np.sum(diverged))
    head = f"{failed} of {seeds} seeds {_verb(n_diverged, failed)}"
    lr = settings.optimizer.learning_rate
    batch = settings.train.batch_size
    summed = settings.train.loss == "sse"
    summed_over = min(batch, rows) if batch is not None else rows
    scaled = f"optimizer.learning_rate={ARTICLE_STEP / summed_over:.2g}"
    if 2 * n_diverged >= failed:
        lower = summed and ARTICLE_STEP / summed_over < lr  # a scaled rate that is no lower helps not
        fix = f", e.g. {scaled} (the loss is summed over {summed_over} rows)" if lower else ""
        line = (
            f"{head} (the loss went non-finite): the learning rate {lr:g} is too high; "
            f"lower optimizer.learning_rate{fix}"
        )
        return Cause("divergence", failed, line)
    if summed and lr * summed_over > SUMMED_STEP:
        where = f"{rows} rows" if batch is None else f"the {summed_over} rows of a batch (train.batch_size)"
        line = (
            f"{head}: the learning rate {lr:g} is on a loss summed over {where} (train.loss=sse); "
            f"try {MLP} or a rate scaled to the rows, e.g. {scaled}"
        )
        return Cause("summed_loss", failed, line)
    hidden = settings.model.hidden
    fan_in = max(features, *(hidden if isinstance(hidden, list) else [hidden]))  # every layer's inputs
    if settings.model.init == "uniform01" and fan_in >= SATURATING_FAN_IN:
        line = (
            f"{head}: U[0, 1) weights (model.init=uniform01) saturate a layer of {fan_in} inputs; "
            "try model=mlp or model.init=glorot_uniform"
        )
        return Cause("saturation", failed, line)
    mlp = "" if settings.train.loss == "cross_entropy" else ", or model=mlp"
    line = (
        f"{head}, cause unknown; try another optimizer.learning_rate, more train.epochs, "
        f"model.hidden or model.init{mlp}"
    )
    return Cause("unknown", failed, line)


def _verb(diverged: int, failed: int) -> str:
    if diverged == failed:
        return "diverged"
    return "collapsed" if diverged == 0 else "collapsed or diverged"


def format_cause(cause: Cause | None) -> list[str]:
    """The report's line for a cause (none for a population that did not fail)."""
    return [] if cause is None else [f"likely cause: {cause.line}"]
