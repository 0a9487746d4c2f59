"""Full-batch training: one network (`train`) or a population of seeds in one program.

A *rule* turns (params, x, y) into an update direction shaped like a gradient; an optax
optimizer turns the direction into the step. `article` + `sgd` is the reference program.
"""

import hashlib
from collections.abc import Callable, Sequence
from functools import cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gophernet_jax.model import (
    Params,
    Sizes,
    hidden_and_output,
    init_params,
    loss,
    per_seed,
    population_accuracy,
    population_hidden_and_output,
    population_loss,
    seeds_first,
    seeds_last,
)
from gophernet_jax.progress import report as progress_report
from gophernet_jax.splits import Table, make_splits

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


def population_autodiff_direction(params: Params, x: jax.Array, y: jax.Array) -> Params:
    """`autodiff_direction` of every seed of a seeds-last population at once.

    Seeds do not interact, so the gradient of the loss summed over seeds holds each
    seed's own gradient; `jax.grad` then contracts with the shared data in single products.
    """
    return jax.grad(lambda p: jnp.sum(population_loss(p, x, y)))(params)


@cache
def _unit_slope_coefficients(degree: int = 5) -> tuple[float, ...]:
    # σ(a)(1 − σ(a)) = 1 / (2 + 2 cosh a) is even and analytic, its nearest pole at a² = −π²:
    # Chebyshev interpolation in u = a² on [0, 1], as power-series coefficients (float64).
    def slope(u):
        return 1.0 / (2.0 + 2.0 * np.cosh(np.sqrt(u)))

    fit = np.polynomial.Chebyshev.interpolate(slope, degree, domain=[0.0, 1.0])
    return tuple(fit.convert(kind=np.polynomial.Polynomial).coef)


def _unit_article_slope(a: jax.Array) -> jax.Array:
    """`_article_slope` of values in [0, 1] (sigmoid outputs), without its two exponentials.

    In float32 (and narrower), a degree-5 polynomial in a²: it is within 0.07 float32 ulp
    of the exact value on [0, 1], and evaluated in float32 within 1 ulp (`_article_slope`
    itself: 2.7 ulp). It makes the article's rule about as fast as `autodiff`: the slope
    of a sigmoid output costs two sigmoids more than autodiff's a(1 − a). float64 keeps
    `_article_slope`, whose accuracy a fit made in float64 could not match.
    """
    if jnp.finfo(a.dtype).bits > 32:
        return _article_slope(a)
    u = a * a
    coefficients = _unit_slope_coefficients()
    slope = jnp.asarray(coefficients[-1], a.dtype)
    for c in coefficients[-2::-1]:  # Horner
        slope = slope * u + jnp.asarray(c, a.dtype)
    return slope


def population_article_direction(params: Params, x: jax.Array, y: jax.Array) -> Params:
    """`article_direction` of every seed of a seeds-last population at once.

    The same arithmetic as `article_direction` up to float rounding: the slope comes from
    `_unit_article_slope`, and with shared data the hidden layer's weights and biases come
    from one product, [x 1]ᵀ @ d_hidden.
    """
    hidden, out = population_hidden_and_output(params, x)
    samples, hidden_units, seeds = hidden.shape
    d_out = (per_seed(y) - out) * _unit_article_slope(out)
    # d_out @ w_out.T and hidden.T @ d_out, seed by seed, unrolled over the hidden units.
    back = jnp.stack([jnp.sum(d_out * params.w_out[j], axis=1) for j in range(hidden_units)], axis=1)
    d_hidden = back * _unit_article_slope(hidden)
    w_out = jnp.stack([jnp.sum(hidden[:, j, None, :] * d_out, axis=0) for j in range(hidden_units)])
    if x.ndim == 2:  # [x 1].T @ d_hidden for all seeds in one product: weights and biases
        x1 = jnp.concatenate([x, jnp.ones((samples, 1), x.dtype)], axis=1)
        both = (x1.T @ d_hidden.reshape(samples, hidden_units * seeds)).reshape(-1, hidden_units, seeds)
        w_hidden, b_hidden = both[:-1], both[-1]
    else:
        w_hidden = jnp.sum(x[:, :, None, :] * d_hidden[:, None, :, :], axis=0)
        b_hidden = jnp.sum(d_hidden, axis=0)
    return Params(-w_hidden, -b_hidden, -w_out, -jnp.sum(d_out, axis=0))


POPULATION_RULES: dict[str, Rule] = {
    "autodiff": population_autodiff_direction,
    "article": population_article_direction,
}


def make_optimizer(name: str, learning_rate: jax.Array | float) -> optax.GradientTransformation:
    """The optax optimizer `name` (one of `OPTIMIZERS`) at this learning rate.

    The learning rate may be a traced array, so changing it does not recompile.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    return getattr(optax, name)(learning_rate)


def _rule(name: str, rules: dict[str, Rule]) -> Rule:
    if name not in rules:
        raise ValueError(f"unknown rule {name!r}; expected one of {', '.join(rules)}")
    return rules[name]


class Curves(NamedTuple):
    """Training loss and test accuracy at epochs 0, k, 2k, ...: leading axes (seeds, points)."""

    loss: jax.Array
    test_accuracy: jax.Array


def curve_epochs(epochs: int, every: int) -> np.ndarray:
    """The epochs at which `Curves` are recorded: 0, every, 2·every, ... up to `epochs`."""
    return np.arange(epochs // every + 1) * every


def _descend(
    params: Params,
    direction: Callable[[Params], Params],
    measure: Callable[[Params], tuple[jax.Array, jax.Array]],
    learning_rate: jax.Array,
    *,
    epochs: int,
    optimizer: str,
    record_every: int = 0,
    on_block: Callable[..., None] | None = None,
) -> tuple[Params, Curves | None]:
    """`epochs` optimizer steps along `direction`, in `lax.scan`; with `record_every` k > 0,
    also `measure` (loss, test accuracy) at epochs 0, k, 2k, ..., and `on_block(k)` called
    on the host after each block of k epochs. Works for one network or for a seeds-last
    population alike: optax's elementwise optimizers keep seeds apart."""
    opt = make_optimizer(optimizer, learning_rate)

    def epoch(carry, _):
        params, state = carry
        updates, state = opt.update(direction(params), state, params)
        return (optax.apply_updates(params, updates), state), None

    carry = (params, opt.init(params))
    if not record_every:
        (params, _), _ = jax.lax.scan(epoch, carry, length=epochs)
        return params, None

    def block(carry, _):
        # An inner scan of `record_every` epochs, then one measurement: the metrics cost
        # one forward pass per block, not per epoch.
        carry, _ = jax.lax.scan(epoch, carry, length=record_every)
        metrics = measure(carry[0])
        if on_block is not None:
            jax.debug.callback(on_block, metrics[0])
        return carry, metrics

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
    dtype = params.w_hidden.dtype
    x, y = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
    direction = _rule(rule, RULES)
    lr = jnp.asarray(learning_rate, dtype)
    return _descend(params, lambda p: direction(p, x, y), None, lr, epochs=epochs, optimizer=optimizer)[0]


def seed_keys(base: int | jax.Array, count: int) -> jax.Array:
    """Keys of seeds 0..count-1 of base seed `base`: `fold_in(key(base), i)`.

    Seed i's key does not depend on `count`, so a 10-seed run is a prefix of a 1000-seed run.
    """
    return fold_in_each(base, jnp.arange(count))


def fold_in_each(seed: int | jax.Array, indices: jax.Array) -> jax.Array:
    """`fold_in(key(seed), i)` for every i in `indices`: the keys of one source's draws."""
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(seed), indices)


class Population(NamedTuple):
    """A trained population: every field has a leading seed axis."""

    params: Params
    final_loss: jax.Array  # training loss after the last epoch
    train_accuracy: jax.Array
    test_accuracy: jax.Array
    diverged: jax.Array  # loss or a parameter went non-finite
    curves: Curves | None = None  # recorded every `record_every` epochs, when asked


def chunking(count: int, chunk_size: int, devices: int = 1) -> tuple[int, int]:
    """(chunks, seeds per chunk): the fewest chunks of at most `chunk_size` seeds that
    `devices` can share equally, made as even as possible.

    Padding (chunks × seeds per chunk − count) is then fewer seeds than there are chunks,
    and under one chunk whenever (chunks − 1)² < count: on one device always, on two for
    every count from 2 up to about `chunk_size`² (249 000 at chunks of 500).
    """
    chunks = -(-count // chunk_size)
    chunks = -(-chunks // devices) * devices  # the chunks' number first, then their width
    return chunks, -(-count // chunks)


SOURCES = ("init", "split", "noise")


class RawSplits(NamedTuple):
    """Training on a raw table, split inside the program (see `splits.make_split`).

    Split s of a population uses key `fold_in(key(split_seed), s)`, noise n uses
    `fold_in(key(noise_seed), n)`; which s and n each seed gets is `seed_indices`'s.
    """

    table: Table
    test_fraction: float = 0.2
    split_seed: int = 0
    noise_seed: int = 0
    noise: float = 0.0


def seed_indices(count: int, vary: Sequence[str] = ("init",), grid_splits: int = 0) -> dict[str, np.ndarray]:
    """Per seed i, the index of its initialisation, split and noise draws.

    A source named in `vary` follows i; the others stay at 0 (one draw for all seeds).
    With `grid_splits` S > 0 the population is a crossed grid of S splits by count/S
    initialisations: seed i has split i // (count/S) and initialisation i % (count/S).
    """
    i = np.arange(count)
    if grid_splits:
        inits = count // grid_splits
        return {"init": i % inits, "split": i // inits, "noise": np.zeros_like(i)}
    return {source: i if source in vary else np.zeros_like(i) for source in SOURCES}


class _Constant:
    """Host data as a static argument of `jit`: hashed and compared by content, so the
    same table reuses the compiled program and becomes a constant inside it."""

    def __init__(self, table: Table, test_fraction: float) -> None:
        self.table, self.test_fraction = table, test_fraction
        parts = [table.x.tobytes(), table.labels.tobytes(), repr((table.feature_names, table.class_names))]
        self._digest = hashlib.sha256(b"".join(p if isinstance(p, bytes) else p.encode() for p in parts))
        self._digest.update(repr(test_fraction).encode())

    def __hash__(self) -> int:
        return hash(self._digest.hexdigest())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Constant) and self._digest.hexdigest() == other._digest.hexdigest()


def _chunk_data(indices, data, sources, raw: _Constant | None, dtype):
    """The chunk's training and test data: shared by all seeds, or a split per seed."""
    if raw is None:
        return data
    fraction, scale = raw.test_fraction, sources["scale"]
    splits = make_splits(
        raw.table,
        fold_in_each(sources["split"], indices[1]),
        fold_in_each(sources["noise"], indices[2]),
        test_fraction=fraction,
        noise=scale,
        dtype=dtype,
    )
    return tuple(jnp.moveaxis(a, 0, -1) for a in splits[:4])  # seeds last


def _train_chunk(
    indices,
    base,
    learning_rate,
    data,
    sources,
    *,
    raw,
    sizes,
    dtype,
    epochs,
    rule,
    optimizer,
    record_every,
    progress,
):
    """Initialises and trains one chunk of seeds (seeds last), and scores them."""
    x, y, x_test, y_test = _chunk_data(indices, data, sources, raw, dtype)
    keys = fold_in_each(base, indices[0])
    params = seeds_last(jax.vmap(init_params, in_axes=(0, None, None))(keys, sizes, dtype))
    direction = _rule(rule, POPULATION_RULES)

    def measure(p):
        return population_loss(p, x, y), population_accuracy(p, x_test, y_test)

    every = record_every or (max(1, epochs // 10) if progress else 0)
    params, curves = _descend(
        params,
        lambda p: direction(p, x, y),
        measure,
        learning_rate,
        epochs=epochs,
        optimizer=optimizer,
        record_every=every,
        on_block=partial(progress_report, keys.shape[0] * every) if progress else None,
    )
    curves = curves if record_every else None
    final_loss = population_loss(params, x, y)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a), axis=tuple(range(a.ndim - 1))) for a in params]), 0)
    return Population(
        params=seeds_first(params),
        final_loss=final_loss,
        train_accuracy=population_accuracy(params, x, y),
        test_accuracy=population_accuracy(params, x_test, y_test),
        diverged=~(jnp.isfinite(final_loss) & finite),
        curves=None if curves is None else Curves(*(c.T for c in curves)),
    )


def layout(count: int, chunk_size: int, devices: int) -> tuple[int, int]:
    """(chunks, seeds per chunk) of a population: whole chunks per device, one chunk shape.

    The chunks' width does not change a seed's numbers (with XLA's YNN fusions off, as
    `gophernet_jax.runtime` sets them; tests/test_scale.py checks it), so any number of
    devices trains the same population.
    """
    return chunking(count, chunk_size, devices)


@partial(
    jax.jit,
    static_argnames=(
        "count",
        "sizes",
        "dtype",
        "epochs",
        "rule",
        "optimizer",
        "chunk_size",
        "record_every",
        "progress",
        "devices",
        "raw",
    ),
)
def _train_population(
    base,
    learning_rate,
    data,
    indices=None,
    sources=None,
    *,
    count,
    sizes,
    dtype,
    epochs,
    rule,
    optimizer,
    chunk_size,
    record_every,
    progress,
    devices,
    raw=None,
) -> Population:
    chunks, per_chunk = layout(count, chunk_size, devices)
    if indices is None:  # seed i is initialisation i; one split, one noise draw
        seeds = jnp.arange(chunks * per_chunk)
        indices = jnp.stack([seeds, jnp.zeros_like(seeds), jnp.zeros_like(seeds)])
    indices = jnp.moveaxis(indices.reshape(3, chunks, per_chunk), 1, 0)  # (chunks, 3, per_chunk)
    data = None if data is None else tuple(jnp.asarray(a, dtype) for a in data)
    one = partial(
        _train_chunk,
        raw=raw,
        sizes=sizes,
        dtype=dtype,
        epochs=epochs,
        rule=rule,
        optimizer=optimizer,
        record_every=record_every,
        progress=progress,
    )

    def run(indices, base, learning_rate, data, sources):
        # lax.map runs the chunks one after another: memory is bounded by one chunk.
        return jax.lax.map(lambda i: one(i, base, learning_rate, data, sources), indices)

    if devices > 1:  # each local device trains its share of the chunks
        mesh = jax.make_mesh((devices,), ("seeds",), axis_types=(jax.sharding.AxisType.Auto,))
        split, shared = jax.sharding.PartitionSpec("seeds"), jax.sharding.PartitionSpec()
        run = jax.shard_map(run, mesh=mesh, in_specs=(split,) + (shared,) * 4, out_specs=split)
        indices = jax.lax.with_sharding_constraint(indices, jax.sharding.NamedSharding(mesh, split))
    population = run(indices, base, learning_rate, data, sources)
    return jax.tree.map(lambda a: a.reshape(chunks * per_chunk, *a.shape[2:])[:count], population)


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
    chunk_size: int = 500,
    record_every: int = 0,
    progress: bool = False,
    raw: RawSplits | None = None,
    vary: Sequence[str] = ("init",),
    grid_splits: int = 0,
) -> Population:
    """Trains `count` seeds of base seed `base` in one jit-compiled program and scores them.

    Seed i starts from `init_params(fold_in(key(base), i), sizes)` and is trained as
    `train` would train it (the same arithmetic, summed in another order): `lax.scan` runs
    the epochs over a population laid out with seeds last (`model.seeds_last`), in chunks
    of at most `chunk_size` seeds that `lax.map` runs one after another (memory is bounded
    by a chunk), shared out among the local devices (`jax.shard_map`). The base seed and
    the learning rate are traced: changing them reuses the compiled program. Only shapes
    and names (count, sizes, epochs, rule, optimizer, dtype) are static.

    With `record_every` k > 0, `curves` holds each seed's training loss and test accuracy
    at epochs 0, k, 2k, ... (`curve_epochs(epochs, k)`).

    With `progress`, the program reports each block of epochs to the active
    `gophernet_jax.progress.Progress` (the CLI draws it on a terminal).

    With `raw`, `train_xy` and `test_xy` are ignored: every seed is trained and tested on
    a split of `raw.table` made inside the program, with the initialisation, split and
    noise draws `seed_indices(count, vary, grid_splits)` gives it.

    A seed whose loss or parameters go non-finite is flagged in `diverged`; it never
    stops the others.

    Returns:
      `Population` with a leading seed axis of length `count`.
    """
    if jnp.dtype(dtype) == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError("dtype float64 needs jax_enable_x64: jax.config.update('jax_enable_x64', True)")
    _rule(rule, RULES), make_optimizer(optimizer, 0.0)  # fail early, before tracing
    devices = jax.local_device_count()
    indices, sources, constant = None, None, None
    data = None if raw is not None else (*train_xy, *test_xy)
    if raw is not None:
        chunks, per_chunk = layout(count, chunk_size, devices)
        wanted = seed_indices(count, vary, grid_splits)
        # Padding seeds (dropped at the end) repeat the first seeds' draws.
        padded = np.stack([np.resize(wanted[source], chunks * per_chunk) for source in SOURCES])
        indices = jnp.asarray(padded, jnp.uint32)
        seeds = {"split": raw.split_seed, "noise": raw.noise_seed}
        sources = {k: jnp.asarray(v, jnp.uint32) for k, v in seeds.items()}
        sources["scale"] = jnp.asarray(raw.noise, dtype)
        constant, data = _Constant(raw.table, raw.test_fraction), None
    elif tuple(vary) != ("init",) or grid_splits:
        raise ValueError("varying the split or the noise needs a raw table (raw=RawSplits(...))")
    return _train_population(
        jnp.asarray(base, jnp.uint32),
        jnp.asarray(learning_rate, dtype),
        data,
        indices,
        sources,
        raw=constant,
        count=count,
        sizes=Sizes(*sizes),
        dtype=jnp.dtype(dtype).name,
        epochs=epochs,
        rule=rule,
        optimizer=optimizer,
        chunk_size=chunk_size,
        record_every=record_every,
        progress=progress,
        devices=devices,
    )
