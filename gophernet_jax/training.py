"""Full-batch training: one network (`train`) or a population of seeds in one program.

A *rule* turns (params, x, y) into an update direction shaped like a gradient; an optax
optimizer turns the direction into the step. `article` + `sgd` is the reference program.
"""

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gophernet_jax.model import Params, Sizes, accuracy, hidden_and_output, init_params, loss

Rule = Callable[[Params, jax.Array, jax.Array], Params]

#: optax aliases usable as `optimizer.name`: each takes `learning_rate` first.
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "lion", "nadam")


def autodiff_direction(params: Params, x: jax.Array, y: jax.Array) -> Params:
    """Exact backpropagation: `jax.grad` of the summed squared error `loss`."""
    return jax.grad(loss)(params, x, y)


def _article_slope(a: jax.Array) -> jax.Array:
    # The reference's sigmoidPrime applied to values that are already sigmoid outputs:
    # σ(a)(1 − σ(a)), not a(1 − a). Kept on purpose: it is what the article ran.
    s = jax.nn.sigmoid(a)
    return s * (1.0 - s)


def article_direction(params: Params, x: jax.Array, y: jax.Array) -> Params:
    """The article's hand-written update, slope quirk included, as a descent direction.

    The article adds `lr * adjustment`; a descent optimizer subtracts `lr * direction`,
    so the direction is the adjustment negated (negation is exact in floating point).
    """
    hidden, out = hidden_and_output(params, x)
    d_out = (y - out) * _article_slope(out)
    d_hidden = (d_out @ params.w_out.T) * _article_slope(hidden)
    return Params(
        w_hidden=-(x.T @ d_hidden),
        b_hidden=-jnp.sum(d_hidden, axis=0),
        w_out=-(hidden.T @ d_out),
        b_out=-jnp.sum(d_out, axis=0),
    )


RULES: dict[str, Rule] = {"autodiff": autodiff_direction, "article": article_direction}


def make_optimizer(name: str, learning_rate: jax.Array | float) -> optax.GradientTransformation:
    """The optax optimizer `name` (one of `OPTIMIZERS`) at this learning rate.

    The learning rate may be a traced array, so changing it does not recompile.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    return getattr(optax, name)(learning_rate)


def _rule(name: str) -> Rule:
    if name not in RULES:
        raise ValueError(f"unknown rule {name!r}; expected one of {', '.join(RULES)}")
    return RULES[name]


class Curves(NamedTuple):
    """Training loss and test accuracy at epochs 0, k, 2k, ...: leading axes (seeds, points)."""

    loss: jax.Array
    test_accuracy: jax.Array


def curve_epochs(epochs: int, every: int) -> np.ndarray:
    """The epochs at which `Curves` are recorded: 0, every, 2·every, ... up to `epochs`."""
    return np.arange(epochs // every + 1) * every


def _train(
    params: Params,
    x,
    y,
    learning_rate,
    *,
    epochs: int,
    rule: str,
    optimizer: str,
    record_every: int = 0,
    test_xy=None,
) -> tuple[Params, Curves | None]:
    direction = _rule(rule)
    dtype = params.w_hidden.dtype
    x, y = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
    opt = make_optimizer(optimizer, jnp.asarray(learning_rate, dtype))

    def epoch(carry, _):
        params, state = carry
        updates, state = opt.update(direction(params, x, y), state, params)
        return (optax.apply_updates(params, updates), state), None

    carry = (params, opt.init(params))
    if not record_every:
        (params, _), _ = jax.lax.scan(epoch, carry, length=epochs)
        return params, None

    x_test, y_test = (jnp.asarray(a, dtype) for a in test_xy)

    def measure(params):
        return loss(params, x, y), accuracy(params, x_test, y_test)

    def block(carry, _):
        # An inner scan of `record_every` epochs, then one measurement: the metrics cost
        # one forward pass per block, not per epoch.
        carry, _ = jax.lax.scan(epoch, carry, length=record_every)
        return carry, measure(carry[0])

    start = measure(params)
    blocks, rest = divmod(epochs, record_every)
    carry, later = jax.lax.scan(block, carry, length=blocks)
    (params, _), _ = jax.lax.scan(epoch, carry, length=rest)
    loss_curve, accuracy_curve = (jnp.concatenate([a[None], b]) for a, b in zip(start, later))
    return params, Curves(loss_curve, accuracy_curve)


@partial(jax.jit, static_argnames=("epochs", "rule", "optimizer"))
def train(
    params: Params,
    x: jax.Array,
    y: jax.Array,
    *,
    epochs: int,
    learning_rate: float | jax.Array,
    rule: str = "autodiff",
    optimizer: str = "sgd",
) -> Params:
    """Trains one network by full-batch gradient descent.

    Computes in the dtype of `params` (float64 when `jax_enable_x64` is on and the
    params are float64); `x`, `y` and the learning rate are cast to it.

    Args:
      params: initial `Params`.
      x: features, (samples, features).
      y: one-hot targets, (samples, classes).
      epochs: number of full-batch steps.
      learning_rate: step size on the summed loss (the article uses 0.3); traced.
      rule: "autodiff" (exact gradient of `loss`) or "article" (the reference's update).
      optimizer: an optax alias from `OPTIMIZERS`; "sgd" is the article's plain step.

    Returns:
      The trained `Params`.

    Example:
      >>> p = init_params(jax.random.key(0), Sizes(4, 3, 3))
      >>> p = train(p, x, y, epochs=5000, learning_rate=0.3, rule="article")
    """
    return _train(params, x, y, learning_rate, epochs=epochs, rule=rule, optimizer=optimizer)[0]


def seed_keys(base: int | jax.Array, count: int) -> jax.Array:
    """Keys of seeds 0..count-1 of base seed `base`: `fold_in(key(base), i)`.

    Seed i's key does not depend on `count`, so a 10-seed run is a prefix of a 1000-seed run.
    """
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(base), jnp.arange(count))


class Population(NamedTuple):
    """A trained population: every field has a leading seed axis."""

    params: Params
    final_loss: jax.Array  # training loss after the last epoch
    train_accuracy: jax.Array
    test_accuracy: jax.Array
    diverged: jax.Array  # loss or a parameter went non-finite
    curves: Curves | None = None  # recorded every `record_every` epochs, when asked


def _all_finite(params: Params) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in params]))


@partial(
    jax.jit,
    static_argnames=("count", "sizes", "dtype", "epochs", "rule", "optimizer", "chunk_size", "record_every"),
)
def _train_population(
    base,
    learning_rate,
    x,
    y,
    x_test,
    y_test,
    *,
    count,
    sizes,
    dtype,
    epochs,
    rule,
    optimizer,
    chunk_size,
    record_every,
) -> Population:
    params = jax.vmap(init_params, in_axes=(0, None, None))(seed_keys(base, count), sizes, dtype)
    one = partial(
        _train,
        x=x,
        y=y,
        learning_rate=learning_rate,
        epochs=epochs,
        rule=rule,
        optimizer=optimizer,
        record_every=record_every,
        test_xy=(x_test, y_test),
    )
    # lax.map over blocks of vmapped seeds bounds memory by the block, whatever the count.
    params, curves = jax.lax.map(one, params, batch_size=min(chunk_size, count))
    x, y, x_test, y_test = (jnp.asarray(a, dtype) for a in (x, y, x_test, y_test))
    final_loss = jax.vmap(loss, in_axes=(0, None, None))(params, x, y)
    return Population(
        params=params,
        final_loss=final_loss,
        train_accuracy=jax.vmap(accuracy, in_axes=(0, None, None))(params, x, y),
        test_accuracy=jax.vmap(accuracy, in_axes=(0, None, None))(params, x_test, y_test),
        diverged=~(jnp.isfinite(final_loss) & jax.vmap(_all_finite)(params)),
        curves=curves,
    )


def train_population(
    base: int,
    count: int,
    sizes: Sizes,
    train_xy: tuple[np.ndarray, np.ndarray],
    test_xy: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int,
    learning_rate: float,
    rule: str = "autodiff",
    optimizer: str = "sgd",
    dtype: str = "float32",
    chunk_size: int = 1000,
    record_every: int = 0,
) -> Population:
    """Trains `count` seeds of base seed `base` in one jit-compiled program and scores them.

    Seed i starts from `init_params(fold_in(key(base), i), sizes)` and is trained exactly
    as `train` would train it; `lax.scan` runs the epochs, `vmap` the seeds, in blocks of
    `chunk_size` seeds. The base seed and the learning rate are traced: changing them
    reuses the compiled program. Only shapes and names (count, sizes, epochs, rule,
    optimizer, dtype) are static.

    With `record_every` k > 0, `curves` holds each seed's training loss and test accuracy
    at epochs 0, k, 2k, ... (`curve_epochs(epochs, k)`).

    A seed whose loss or parameters go non-finite is flagged in `diverged`; it never
    stops the others.

    Returns:
      `Population` with a leading seed axis of length `count`.
    """
    if jnp.dtype(dtype) == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError("dtype float64 needs jax_enable_x64: jax.config.update('jax_enable_x64', True)")
    _rule(rule), make_optimizer(optimizer, 0.0)  # fail early, before tracing
    return _train_population(
        jnp.asarray(base, jnp.uint32),
        jnp.asarray(learning_rate, dtype),
        *train_xy,
        *test_xy,
        count=count,
        sizes=Sizes(*sizes),
        dtype=jnp.dtype(dtype).name,
        epochs=epochs,
        rule=rule,
        optimizer=optimizer,
        chunk_size=chunk_size,
        record_every=record_every,
    )
