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


def correct(outputs: jax.Array, y: jax.Array) -> jax.Array:
    """Per row: does the true class's output equal the row maximum? Ties count as correct.

    The true class is the first column holding the row's largest label, so an all-zero
    label row (the reference loader's padding row) counts as class 0, as it does there.
    """
    truth = jnp.take_along_axis(outputs, jnp.argmax(y, axis=-1)[..., None], axis=-1)[..., 0]
    return truth == jnp.max(outputs, axis=-1)


def accuracy(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """Share of rows classified correctly, as the article counts it (see `correct`)."""
    outputs = forward(params, x)
    return jnp.mean(correct(outputs, y), dtype=outputs.dtype)
