"""The article's network: one sigmoid hidden layer, sigmoid outputs, squared error.

Every function here works on one network; `jax.vmap` makes it work on many.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Params(NamedTuple):
    """The 4-3-3 network's weights, named as in the article (wHidden, bHidden, wOut, bOut)."""

    w_hidden: jax.Array  # (features, hidden)
    b_hidden: jax.Array  # (hidden,)
    w_out: jax.Array  # (hidden, classes)
    b_out: jax.Array  # (classes,)


class Sizes(NamedTuple):
    """Layer widths: input features, hidden units, output classes."""

    features: int
    hidden: int
    classes: int


def param_count(sizes: Sizes) -> int:
    """Number of parameters of a network of these sizes (27 for the article's 4-3-3)."""
    f, h, c = sizes
    return f * h + h + h * c + c


def init_params(key: jax.Array, sizes: Sizes, dtype: jnp.dtype = jnp.float32) -> Params:
    """Draws every parameter, biases included, uniform on [0, 1), as the article does.

    One draw of all the numbers, cut in the article's fill order (wHidden row-major,
    bHidden, wOut row-major, bOut): a single draw per seed keeps the many-seed
    program quick to compile.

    Args:
      key: a `jax.random` key.
      sizes: `Sizes(features, hidden, classes)`, e.g. `Sizes(4, 3, 3)`.
      dtype: floating dtype of the parameters.

    Returns:
      `Params` of shapes (features, hidden), (hidden,), (hidden, classes), (classes,).

    Example:
      >>> p = init_params(jax.random.key(0), Sizes(4, 3, 3))
      >>> p.w_hidden.shape
      (4, 3)
    """
    f, h, c = sizes
    flat = jax.random.uniform(key, (param_count(sizes),), dtype=dtype)
    cuts = [f * h, f * h + h, f * h + h + h * c]
    w_hidden, b_hidden, w_out, b_out = jnp.split(flat, cuts)
    return Params(w_hidden.reshape(f, h), b_hidden, w_out.reshape(h, c), b_out)


def hidden_and_output(params: Params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Forward pass keeping the hidden activations, which backpropagation needs."""
    hidden = jax.nn.sigmoid(x @ params.w_hidden + params.b_hidden)
    return hidden, jax.nn.sigmoid(hidden @ params.w_out + params.b_out)


def forward(params: Params, x: jax.Array) -> jax.Array:
    """The network's outputs, one row per sample, one column per class, each in (0, 1)."""
    return hidden_and_output(params, x)[1]


def loss(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """½ · Σ (y − out)² summed over samples and classes, not averaged.

    Summed as in the article, so that a learning rate means what it means there:
    0.3 on this sum is 0.3 · n on the mean.
    """
    return 0.5 * jnp.sum((y - forward(params, x)) ** 2)


#: How a row whose largest output is shared is scored (`report.ties`): "strict" (the
#: default) counts a row as correct only when its true class's output is strictly larger
#: than every other output; "article" counts a tie for the maximum as correct, as the
#: reference program does (and then a network whose outputs all underflow to 0 scores 1.0).
TIES = ("strict", "article")


def _true_class(outputs: jax.Array, y: jax.Array) -> jax.Array:
    # The first column holding the row's largest label, broadcast over leading (seed) axes
    # that `y` lacks: an all-zero label row (the reference loader's padding row) is class 0.
    return jnp.broadcast_to(jnp.argmax(y, axis=-1)[..., None], outputs.shape[:-1] + (1,))


def correct(outputs: jax.Array, y: jax.Array, ties: str = "strict") -> jax.Array:
    """Per row: is the true class predicted? See `TIES` for how a shared maximum counts.

    `outputs` may have leading axes (seeds) that `y` lacks. A row with a non-finite output
    is never correct.
    """
    if ties not in TIES:
        raise ValueError(f"unknown tie rule {ties!r}; expected one of {', '.join(TIES)}")
    labels = _true_class(outputs, y)
    truth = jnp.take_along_axis(outputs, labels, axis=-1)[..., 0]
    if ties == "article":
        return truth == jnp.max(outputs, axis=-1)
    is_true = jnp.arange(outputs.shape[-1]) == labels
    floating = jnp.issubdtype(outputs.dtype, jnp.floating)
    lowest = jnp.asarray(-jnp.inf if floating else jnp.iinfo(outputs.dtype).min, outputs.dtype)
    others = jnp.max(jnp.where(is_true, lowest, outputs), axis=-1)
    return truth > others


def tied(outputs: jax.Array) -> jax.Array:
    """Per row: is the largest output shared by two or more classes?"""
    top = jnp.max(outputs, axis=-1, keepdims=True)
    return jnp.sum(outputs == top, axis=-1) >= 2


def predicted_class(outputs: jax.Array) -> jax.Array:
    """Per row: the class of the largest output, or -1 where that maximum is tied."""
    return jnp.where(tied(outputs), -1, jnp.argmax(outputs, axis=-1))


def collapsed(outputs: jax.Array) -> jax.Array:
    """Over the rows axis (-2): does the network tie on, or predict one class for, every row?

    Such a network has learnt nothing about its input: every row it does not tie on gets
    the same class. `outputs` (..., rows, classes) gives (...,).
    """
    pred = predicted_class(outputs)
    used = jnp.any(pred[..., None] == jnp.arange(outputs.shape[-1]), axis=-2)
    return jnp.sum(used, axis=-1) <= 1


def accuracy(params: Params, x: jax.Array, y: jax.Array, ties: str = "strict") -> jax.Array:
    """Share of rows classified correctly (see `correct`; `ties="article"` is the article's count)."""
    outputs = forward(params, x)
    return jnp.mean(correct(outputs, y, ties), dtype=outputs.dtype)


# A population of networks with the seed axis last: w_hidden (features, hidden, seeds),
# b_hidden (hidden, seeds), w_out (hidden, classes, seeds), b_out (classes, seeds).
# With seeds on the minor axis, the contraction with the shared data is one matrix
# product for all seeds, and the per-seed products vectorise across seeds; this runs
# several times faster on a CPU than `vmap` over the leading axis.


def seeds_last(params: Params) -> Params:
    """Moves a population's leading seed axis to the end (see above)."""
    return Params(*(jnp.moveaxis(a, 0, -1) for a in params))


def seeds_first(params: Params) -> Params:
    """Moves a population's trailing seed axis to the front: `Params` of a leading seed axis."""
    return Params(*(jnp.moveaxis(a, -1, 0) for a in params))


def per_seed(a: jax.Array) -> jax.Array:
    # Data shared by every seed is (samples, columns); data of its own per seed (a split
    # per seed) is (samples, columns, seeds). Both broadcast against (samples, columns, seeds).
    return a if a.ndim == 3 else a[:, :, None]


def population_hidden_and_output(params: Params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Every seed's forward pass: hidden (samples, hidden, seeds), outputs (samples, classes, seeds).

    `x` is (samples, features), shared by every seed, or (samples, features, seeds).
    """
    features, hidden_units, seeds = params.w_hidden.shape
    if x.ndim == 2:  # one matrix product for all seeds
        pre = (x @ params.w_hidden.reshape(features, hidden_units * seeds)).reshape(-1, hidden_units, seeds)
    else:  # Σ_k x[n, k, s] · w_hidden[k, j, s], unrolled over the few features
        pre = sum(x[:, k, None, :] * params.w_hidden[k] for k in range(features))
    hidden = jax.nn.sigmoid(pre + params.b_hidden)
    # Σ_j hidden[n, j, s] · w_out[j, c, s], unrolled over the few hidden units.
    mixed = sum(hidden[:, j, None, :] * params.w_out[j] for j in range(hidden_units))
    return hidden, jax.nn.sigmoid(mixed + params.b_out)


def row_weights(weights: jax.Array) -> jax.Array:
    """Row weights (samples,) or (samples, seeds), broadcast against (samples, classes, seeds)."""
    return weights[:, None, None] if weights.ndim == 1 else weights[:, None, :]


def population_loss(
    params: Params, x: jax.Array, y: jax.Array, weights: jax.Array | None = None
) -> jax.Array:
    """Every seed's `loss`, shape (seeds,); `y` is (samples, classes) or (samples, classes, seeds).

    With `weights` (see `row_weights`), each row's squared error is weighted.
    """
    outputs = population_hidden_and_output(params, x)[1]
    squared = (per_seed(y) - outputs) ** 2
    if weights is not None:
        squared = row_weights(weights) * squared
    return 0.5 * jnp.sum(squared, axis=(0, 1))


class Scores(NamedTuple):
    """A population's scores on some rows, one value per seed."""

    accuracy: jax.Array  # share of rows correct (`correct`)
    tied_rows: jax.Array  # rows whose largest output is shared (`tied`)
    collapsed: jax.Array  # ties on, or predicts one class for, every row (`collapsed`)


def population_scores(params: Params, x: jax.Array, y: jax.Array, ties: str = "strict") -> Scores:
    """Every seed's `Scores` on (x, y); `y` is (samples, classes) or (samples, classes, seeds)."""
    outputs = jnp.moveaxis(population_hidden_and_output(params, x)[1], -1, 0)
    y = y if y.ndim == 2 else jnp.moveaxis(y, -1, 0)
    return Scores(
        accuracy=jnp.mean(correct(outputs, y, ties), axis=-1, dtype=outputs.dtype),
        tied_rows=jnp.sum(tied(outputs), axis=-1, dtype=jnp.int32),
        collapsed=collapsed(outputs),
    )


def population_accuracy(params: Params, x: jax.Array, y: jax.Array, ties: str = "strict") -> jax.Array:
    """Every seed's `accuracy`, shape (seeds,)."""
    return population_scores(params, x, y, ties).accuracy
