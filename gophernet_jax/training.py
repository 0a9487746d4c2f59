"""Training: one network (`train`) or a population of seeds in one program.

A *rule* turns (params, x, y) into an update direction shaped like a gradient; an optax
optimizer turns the direction into the step. `article` + `sgd` is the reference program.
Training is full-batch, as in the article, unless a batch size is given: then every epoch
visits the training rows in a fresh random order, in mini-batches.

Every source of randomness has its own stream of keys (`source_keys`): the initial
weights, the data split, the feature noise and the data order.
"""

import zlib
from collections.abc import Callable, Mapping, Sequence
from functools import cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gophernet_jax.model import (
    ARTICLE,
    SEED_BLOCK,
    Net,
    Params,
    Sizes,
    draw_params,
    hidden_and_output,
    hidden_widths,
    loss,
    per_seed,
    population_accuracy,
    population_hidden_and_output,
    population_loss,
    population_scores,
    row_weights,
    seeds_first,
    seeds_last,
    shared_product,
    static_sizes,
)
from gophernet_jax.progress import expect as expect_progress
from gophernet_jax.progress import report as progress_report
from gophernet_jax.runtime import usable_cores
from gophernet_jax.splits import Split, StaticTable, Table, draw_split, draw_splits, minmax_fit, split_sizes

#: (params, x, y, weights) -> direction; weights is None (every row counts once) or one
#: weight per row (per row and seed in a population), 0 for the padding of a last batch.
Rule = Callable[..., Params]

#: optax aliases usable as `optimizer.name`: each takes `learning_rate` first.
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "lion", "nadam")


def autodiff_direction(
    params: Params, x: jax.Array, y: jax.Array, weights: jax.Array | None = None, net: Net = ARTICLE
) -> Params:
    """Exact backpropagation: `jax.grad` of the network's `loss` (rows weighted)."""
    return jax.grad(loss)(params, x, y, net, weights)


def _article_slope(a: jax.Array) -> jax.Array:
    # The reference's sigmoidPrime applied to values that are already sigmoid outputs:
    # σ(a)(1 − σ(a)), not a(1 − a). Kept on purpose: it is what the article ran.
    s = jax.nn.sigmoid(a)
    return s * (1.0 - s)


def article_direction(
    params: Params, x: jax.Array, y: jax.Array, weights: jax.Array | None = None, net: Net = ARTICLE
) -> Params:
    """The article's hand-written update, slope quirk included, as a descent direction.

    The article adds `lr * adjustment`; a descent optimizer subtracts `lr * direction`,
    so the direction is the adjustment negated (negation is exact in floating point).
    """
    hidden, out = hidden_and_output(params, x)
    d_out = (y - out) * _article_slope(out)
    if weights is not None:
        d_out = weights[:, None] * d_out
    d_hidden = (d_out @ params.w_out.T) * _article_slope(hidden)
    return Params(
        w_hidden=-(x.T @ d_hidden),
        b_hidden=-jnp.sum(d_hidden, axis=0),
        w_out=-(hidden.T @ d_out),
        b_out=-jnp.sum(d_out, axis=0),
    )


RULES: dict[str, Rule] = {"autodiff": autodiff_direction, "article": article_direction}


def population_autodiff_direction(
    params: Params, x: jax.Array, y: jax.Array, weights: jax.Array | None = None, net: Net = ARTICLE
) -> Params:
    """`autodiff_direction` of every seed of a seeds-last population at once.

    Seeds do not interact, so the gradient of the loss summed over seeds holds each
    seed's own gradient; `jax.grad` then contracts with the shared data in single products.
    """
    return jax.grad(lambda p: jnp.sum(population_loss(p, x, y, weights, net)))(params)


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


def population_article_direction(
    params: Params, x: jax.Array, y: jax.Array, weights: jax.Array | None = None, net: Net = ARTICLE
) -> Params:
    """`article_direction` of every seed of a seeds-last population at once.

    The same arithmetic as `article_direction` up to float rounding: the slope comes from
    `_unit_article_slope`, and with shared data the hidden layer's weights and biases come
    from one product, [x 1]ᵀ @ d_hidden.
    """
    hidden, out = population_hidden_and_output(params, x)
    samples, hidden_units, seeds = hidden.shape
    d_out = (per_seed(y) - out) * _unit_article_slope(out)
    if weights is not None:  # (samples,) or (samples, seeds)
        d_out = row_weights(weights) * d_out
    # d_out @ w_out.T and hidden.T @ d_out, seed by seed, unrolled over the hidden units.
    back = jnp.stack([jnp.sum(d_out * params.w_out[j], axis=1) for j in range(hidden_units)], axis=1)
    d_hidden = back * _unit_article_slope(hidden)
    w_out = jnp.stack([jnp.sum(hidden[:, j, None, :] * d_out, axis=0) for j in range(hidden_units)])
    if x.ndim == 2:  # [x 1].T @ d_hidden for all seeds in one product: weights and biases
        x1 = jnp.concatenate([x, jnp.ones((samples, 1), x.dtype)], axis=1)
        # d_hidden's only use: XLA would fuse its arithmetic into the copy into blocks (`_apart`)
        both = shared_product(x1, d_hidden, contract=0, apart=True)
        w_hidden, b_hidden = both[:-1], both[-1]
    else:
        w_hidden = jnp.sum(x[:, :, None, :] * d_hidden[:, None, :, :], axis=0)
        b_hidden = jnp.sum(d_hidden, axis=0)
    return Params(-w_hidden, -b_hidden, -w_out, -jnp.sum(d_out, axis=0))


POPULATION_RULES: dict[str, Rule] = {
    "autodiff": population_autodiff_direction,
    "article": population_article_direction,
}


def _scheduled(schedule: str, peak, steps: int, warmup, count: jax.Array) -> jax.Array:
    # Written out rather than optax's schedules, whose step counts must be Python numbers:
    # here the warmup share stays traced, so a sweep over it compiles once.
    peak = jnp.asarray(peak)
    t = jnp.asarray(count, peak.dtype)
    warm = jnp.zeros((), peak.dtype) if schedule == "cosine" else jnp.maximum(jnp.round(warmup * steps), 1)
    fall = jnp.clip((t - warm) / jnp.maximum(steps - warm, 1), 0, 1)
    down = peak * (0.5 * (1 + jnp.cos(jnp.pi * fall)))
    return jnp.where(t < warm, peak * t / jnp.maximum(warm, 1), down)


#: Learning-rate schedules (`optimizer.schedule`) over the run's steps.
SCHEDULES = ("constant", "cosine", "warmup_cosine")


class Optimizer(NamedTuple):
    """The optimizer's static choices: its name, schedule, steps in all, and whether a
    weight decay is applied (its value is traced, like the learning rate)."""

    name: str = "sgd"
    schedule: str = "constant"
    steps: int = 1
    decay: bool = False


def make_optimizer(
    name: str,
    learning_rate: jax.Array | float,
    *,
    schedule: str = "constant",
    steps: int = 1,
    weight_decay: jax.Array | float | None = None,
    warmup: jax.Array | float = 0.1,
) -> optax.GradientTransformation:
    """The optax optimizer `name` (one of `OPTIMIZERS`) at this learning rate.

    The learning rate, weight decay and warmup share may be traced arrays, so changing them
    does not recompile. `schedule` (one of `SCHEDULES`) shapes the rate over `steps` steps:
    `cosine` decays it to 0, `warmup_cosine` first rises linearly from 0 over `warmup` of
    the steps. `weight_decay` is adamw's own (decoupled); for the other optimizers it is
    added to the direction (L2), `optax.add_decayed_weights`. None: adamw keeps optax's
    default, the others none.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    rate = (
        learning_rate
        if schedule == "constant"
        else partial(_scheduled, schedule, learning_rate, steps, warmup)
    )
    if name == "adamw":
        return optax.adamw(rate) if weight_decay is None else optax.adamw(rate, weight_decay=weight_decay)
    opt = getattr(optax, name)(rate)
    return opt if weight_decay is None else optax.chain(optax.add_decayed_weights(weight_decay), opt)


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


#: One epoch: (params, optimizer state, epoch number) -> (params, optimizer state).
Update = Callable[[Params, optax.OptState, jax.Array], tuple[Params, optax.OptState]]


def _full_batch(opt: optax.GradientTransformation, direction: Rule, x: jax.Array, y: jax.Array) -> Update:
    """An epoch of the article's training: one step on every training row at once."""

    def update(params, state, epoch):
        updates, state = opt.update(direction(params, x, y), state, params)
        return optax.apply_updates(params, updates), state

    return update


def steps_per_epoch(rows: int, batch_size: int | None) -> int:
    """Optimizer steps in one epoch: 1 for the full batch, else one per (last partial) batch."""
    return 1 if batch_size is None else -(-rows // batch_size)


def epoch_order(key: jax.Array, epoch: jax.Array, rows: int, batch_size: int) -> jax.Array:
    """The training rows of one epoch in mini-batches: (steps, batch_size) row indices.

    The order is a permutation drawn from `fold_in(key, epoch)`. When `batch_size` does not
    divide `rows`, the last batch is the smaller remainder: it is padded with the index
    `rows`, a row of weight 0, so every row is visited exactly once per epoch.
    """
    steps = steps_per_epoch(rows, batch_size)
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), rows)
    padding = jnp.full(steps * batch_size - rows, rows, perm.dtype)
    return jnp.concatenate([perm, padding]).reshape(steps, batch_size)


def _take_rows(a: jax.Array, idx: jax.Array) -> jax.Array:
    """Rows `idx` of `a`: idx (batch,) for every seed alike, or (batch, seeds), a batch per
    seed of a seeds-last population, giving (batch, columns, seeds)."""
    if idx.ndim == 1:
        return a[idx]
    if a.ndim == 2:  # shared data, an order per seed
        return jnp.moveaxis(a[idx], -1, 1)
    return jnp.take_along_axis(a, idx[:, None, :], axis=0)  # data and order per seed


def _mini_batches(
    opt: optax.GradientTransformation,
    direction: Rule,
    x: jax.Array,
    y: jax.Array,
    batch_size: int,
    order: jax.Array,
) -> Update:
    """An epoch of mini-batch steps in a fresh order (`epoch_order`): from one key `order`
    for every seed alike, or from a key per seed (`order` of shape (seeds,))."""
    rows = x.shape[0]
    x_padded, y_padded = (jnp.concatenate([a, jnp.zeros((1, *a.shape[1:]), a.dtype)]) for a in (x, y))

    def update(params, state, epoch):
        if order.ndim == 0:
            idx = epoch_order(order, epoch, rows, batch_size)
        else:  # (seeds, steps, batch) -> (steps, batch, seeds)
            orders = jax.vmap(epoch_order, in_axes=(0, None, None, None))(order, epoch, rows, batch_size)
            idx = jnp.moveaxis(orders, 0, -1)

        def step(carry, batch):
            params, state = carry
            weights = (batch < rows).astype(x.dtype)
            xb, yb = _take_rows(x_padded, batch), _take_rows(y_padded, batch)
            updates, state = opt.update(direction(params, xb, yb, weights), state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, state), _ = jax.lax.scan(step, (params, state), idx)
        return params, state

    return update


def _descend(
    params: Params,
    opt: optax.GradientTransformation,
    update: Update,
    measure: Callable[[Params], tuple[jax.Array, jax.Array]] | None,
    *,
    epochs: int,
    record_every: int = 0,
    on_block: Callable[..., None] | None = None,
) -> tuple[Params, Curves | None]:
    """`epochs` epochs of `update`, in `lax.scan`; with `record_every` k > 0, also `measure`
    (loss, test accuracy) at epochs 0, k, 2k, ..., and `on_block(k)` called on the host
    after each block of k epochs. Works for one network or for a seeds-last population
    alike: optax's elementwise optimizers keep seeds apart."""

    def epoch(carry, _):
        params, state, number = carry
        params, state = update(params, state, number)
        return (params, state, number + 1), None

    carry = (params, opt.init(params), jnp.zeros((), jnp.uint32))
    if not record_every:
        (params, _, _), _ = jax.lax.scan(epoch, carry, length=epochs)
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
    (params, _, _), _ = jax.lax.scan(epoch, carry, length=rest)
    loss_curve, accuracy_curve = (jnp.concatenate([a[None], b]) for a, b in zip(start, later))
    return params, Curves(loss_curve, accuracy_curve)


def train(
    params: Params,
    x: jax.Array,
    y: jax.Array,
    *,
    epochs: int,
    learning_rate: float | jax.Array,
    rule: str = "autodiff",
    optimizer: str = "sgd",
    batch_size: int | None = None,
    order_key: jax.Array | None = None,
    net: Net = ARTICLE,
    weight_decay: float | None = None,
    schedule: str = "constant",
    warmup: float = 0.1,
) -> Params:
    """Trains one network by gradient descent: full-batch (the article's), or in mini-batches.

    One network is a population of one: this runs the population program (`train_population`'s
    arithmetic) on a seed axis of length 1, in the dtype of `params` (float64 when
    `jax_enable_x64` is on and the params are float64); `x`, `y` and the numbers are cast to it.

    Args:
      params: initial `Params`.
      x: features, (samples, features).
      y: one-hot targets, (samples, classes).
      epochs: number of passes over the training rows.
      learning_rate: step size (on the summed loss for `sse`: the article uses 0.3); traced.
      rule: "autodiff" (exact gradient of `loss`) or "article" (the reference's update).
      optimizer: an optax alias from `OPTIMIZERS`; "sgd" is the article's plain step.
      batch_size: None (every row in one step per epoch) or the rows per step; each epoch
        then visits the rows in the order `epoch_order(order_key, epoch, ...)`.
      order_key: key of the data order; needed with a `batch_size`.
      net: the activation and loss (`model.Net`); the article's by default.
      weight_decay, schedule, warmup: see `make_optimizer`.

    Returns:
      The trained `Params`.

    Example:
      >>> p = init_params(jax.random.key(0), Sizes(4, 3, 3))
      >>> p = train(p, x, y, epochs=5000, learning_rate=0.3, rule="article")
    """
    if batch_size is not None and order_key is None:
        raise ValueError("train: a batch_size needs an order_key (the data order's key)")
    check_rule(rule, net, params)
    dtype = params.w_hidden.dtype
    steps = epochs * steps_per_epoch(len(x), batch_size)
    spec = _OneSpec(
        net, rule, Optimizer(optimizer, schedule, steps, weight_decay is not None), epochs, batch_size
    )
    numbers = Numbers.of(learning_rate, weight_decay, warmup, dtype)
    order = jax.random.key(0) if order_key is None else order_key
    one = jax.tree.map(lambda a: a[..., None], params)  # seeds last, one seed
    trained = _train_one(one, jnp.asarray(x, dtype), jnp.asarray(y, dtype), numbers, order, spec)
    return jax.tree.map(lambda a: a[..., 0], trained)


class Numbers(NamedTuple):
    """The numbers a sweep changes, traced beside the static spec: changing them reuses
    the compiled program."""

    learning_rate: jax.Array
    weight_decay: jax.Array  # used only when the spec's optimizer has `decay`
    warmup: jax.Array  # share of the steps, for `warmup_cosine`

    @classmethod
    def of(cls, learning_rate, weight_decay, warmup, dtype) -> "Numbers":
        """NumPy scalars of `dtype` (a jnp conversion would compile a small program of its
        own); a weight decay of None is 0 (the spec then applies none)."""
        return cls(
            *(np.asarray(0.0 if v is None else v, dtype) for v in (learning_rate, weight_decay, warmup))
        )


class _OneSpec(NamedTuple):
    net: Net
    rule: str
    optimizer: Optimizer
    epochs: int
    batch_size: int | None


def _optimizer(optimizer: Optimizer, numbers: Numbers) -> optax.GradientTransformation:
    decay = numbers.weight_decay if optimizer.decay else None
    return make_optimizer(
        optimizer.name,
        numbers.learning_rate,
        schedule=optimizer.schedule,
        steps=optimizer.steps,
        weight_decay=decay,
        warmup=numbers.warmup,
    )


def _update(spec, opt, x, y, order) -> Update:
    """One epoch of `spec.rule` on a seeds-last population, full batch or in mini-batches
    (`order` a key for every seed alike, or a key per seed)."""
    direction = partial(POPULATION_RULES[spec.rule], net=spec.net)
    if spec.batch_size is None:
        return _full_batch(opt, direction, x, y)
    return _mini_batches(opt, direction, x, y, spec.batch_size, order)


@partial(jax.jit, static_argnames="spec")
def _train_one(params, x, y, numbers, order, spec):
    opt = _optimizer(spec.optimizer, numbers)
    return _descend(params, opt, _update(spec, opt, x, y, order), None, epochs=spec.epochs)[0]


def check_rule(rule: str, net: Net, sizes_or_params: Sizes | Params) -> None:
    """The article's update exists only for its architecture: one sigmoid hidden layer, `sse`."""
    _rule(rule, RULES)
    if rule != "article":
        return
    if isinstance(sizes_or_params, Params):
        layers = 1 + len(sizes_or_params.w_deeper)
    else:
        layers = len(hidden_widths(sizes_or_params))
    if layers != 1 or net != ARTICLE:
        raise ValueError(
            "train.rule=article is the reference program's update: it needs one sigmoid hidden layer "
            f"and train.loss=sse (got {layers} hidden layer(s), {net.activation}, {net.loss})"
        )


#: Every source of randomness but the initialisation has a stream of its own: a tag is
#: folded into its base key before the draw's index. Initialisation keeps
#: `fold_in(key(base), i)`, so populations trained before the streams keep their weights;
#: the tags are >= 2**31, so another stream's base key could equal an initialisation key
#: only for seed indices >= 2**31. `poke` is last, so the others keep their rows in
#: `population_layout` (see `poke_params`).
SOURCES = ("init", "split", "noise", "order", "poke")
STREAM_TAGS = {s: zlib.crc32(f"gophernet_jax/{s}".encode()) | 1 << 31 for s in SOURCES[1:]}


def stream_key(source: str, seed: int | jax.Array) -> jax.Array:
    """The base key of a source's stream: `key(seed)` for init, with its tag folded in for the others."""
    key = jax.random.key(seed)
    return key if source == "init" else jax.random.fold_in(key, np.uint32(STREAM_TAGS[source]))


def draw_key(source: str, seed: int | jax.Array, index: int = 0) -> jax.Array:
    """The key of draw `index` of one source: one element of `source_keys`."""
    return jax.random.fold_in(stream_key(source, seed), np.uint32(index))


def source_keys(source: str, seed: int | jax.Array, indices: jax.Array) -> jax.Array:
    """Keys of draws `indices` of one source (`SOURCES`): `fold_in(stream_key(source, seed), i)`."""
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(stream_key(source, seed), indices)


def seed_keys(base: int | jax.Array, count: int) -> jax.Array:
    """Keys of seeds 0..count-1 of base seed `base`: `fold_in(key(base), i)`.

    Seed i's key does not depend on `count`, so a 10-seed run is a prefix of a 1000-seed run.
    """
    return source_keys("init", base, jnp.arange(count))


class Population(NamedTuple):
    """A trained population: every field has a leading seed axis."""

    params: Params
    final_loss: jax.Array  # training loss after the last epoch
    train_accuracy: jax.Array
    test_accuracy: jax.Array
    diverged: jax.Array  # loss or a parameter went non-finite
    curves: Curves | None = None  # recorded every `record_every` epochs, when asked
    val_accuracy: jax.Array | None = None  # with a validation part
    tied_rows: jax.Array | None = None  # test rows whose largest output is shared
    collapsed: jax.Array | None = None  # ties on, or predicts one class for, every test row
    # Per seed and test row, when asked (`row_results=True`): the predicted class (int8, -1 where the
    # largest output is tied) and whether the row counts as correct under the run's tie rule.
    test_predicted: jax.Array | None = None
    test_correct: jax.Array | None = None
    # With per-row results and a split per seed: the table rows each seed was tested on (int32).
    test_rows: jax.Array | None = None


def chunking(count: int, chunk_size: int, devices: int = 1) -> tuple[int, int]:
    """(chunks, seeds per chunk): the fewest chunks of at most `chunk_size` seeds that
    `devices` can share equally, made as even as possible.

    Padding (chunks × seeds per chunk − count) is then fewer seeds than there are chunks,
    and under one chunk whenever (chunks − 1)² < count: on one device always, on two for
    every count from 2 up to about `chunk_size`² (249 000 at chunks of 500). The chunks'
    width does not change a seed's numbers (with XLA's YNN fusions off, as
    `gophernet_jax.runtime` sets them; tests/test_scale.py checks it), so any number of
    devices trains the same population.
    """
    chunks = -(-count // chunk_size)
    chunks = -(-chunks // devices) * devices  # the chunks' number first, then their width
    return chunks, -(-count // chunks)


#: The narrowest chunk of whole blocks: two blocks of `SEED_BLOCK` seeds (`chunk_layout`).
LEAST_CHUNK = 2 * SEED_BLOCK


def least_chunk(own_splits: bool) -> int:
    """The narrowest chunk of whole blocks (`chunk_layout`): two blocks with data shared by
    every seed (`LEAST_CHUNK`), one where each seed scales a split of its own (its products
    are its own: chunks of 16 and of 32 to 64 agreed bit for bit, wine at 64 units and
    iris at 32, Adam, 2026-12-07)."""
    return SEED_BLOCK if own_splits else LEAST_CHUNK


def chunk_layout(count: int, chunk_size: int, devices: int = 1, least: int = LEAST_CHUNK) -> tuple[int, int]:
    """(chunks, seeds per chunk) that `count` seeds train in: `chunking` of whole blocks of
    `SEED_BLOCK` seeds, at most `chunk_size` seeds wide (rounded down to whole blocks), the
    chunks' room past `count` filled with padding seeds.

    A chunk's width is then a multiple of 16 seeds, of the widest vector of float32 an x86-64
    CPU has (AVX-512): XLA's CPU code vectorises across the seeds (the minor axis), and a
    chunk narrower than that, or not a multiple of it, computed otherwise (natively on
    AVX-512, softmax networks: the gradients of chunks of 2, 5 and 8 seeds differed from the
    same seeds' in a chunk of 128; at 3 tanh units also those of chunks of 17, 31, 33, 47 and
    100; chunks of 16, 24, 32 agreed; the design study's chunks of 500 computed their last 4
    seeds otherwise). A chunk narrower than one block (`chunk_size` < 16, which `chunk_choice`
    picks only where the memory budget holds no more) is as `chunking` makes it, two seeds at
    least: a chunk of one seed computed otherwise again; such a chunk's seeds may differ in
    their last bits from the same seeds in whole blocks.

    A chunk of whole blocks holds two at least (`LEAST_CHUNK` seeds): in a chunk of one
    block, whose products with the shared data pad it to two (`model.shared_product`), XLA
    fused other arithmetic with the copy of the weights' gradient out of its blocks than in
    wider chunks (Adam's moments, natively on AVX-512: 18 of 40 seeds of 13 inputs onto 64
    tanh units ended 30 epochs with other weights alone than among 40 seeds). A
    `chunk_size` below `LEAST_CHUNK` is a narrow chunk, as above. `least` (`least_chunk`)
    lowers that to one block where seeds scale splits of their own: their products are their
    own, with no padding."""
    if chunk_size < least:
        chunks, per_chunk = chunking(count, chunk_size, devices)
        return chunks, max(2, per_chunk)
    chunks, blocks = chunking(-(-count // SEED_BLOCK), chunk_size // SEED_BLOCK, devices)
    return chunks, max(least // SEED_BLOCK, blocks) * SEED_BLOCK


#: The widest chunk `chunk_choice` picks (500 before chunks were whole blocks of 16 seeds):
#: wider chunks trained the article's network no faster, and a chunk is compiled as one program.
MAX_CHUNK = 512
#: The activations of one chunk that `chunk_choice`'s "auto" keeps within, in bytes
#: (`activation_bytes`), where each device is one CPU core (`core_each`): about a core's L2
#: cache. Where a chunk's activations outgrow it, a narrower chunk trains faster (2-core
#: AVX-512 AMD EPYC, 2026-12-07, seed-epochs/s on two devices: the article's network, 1000
#: seeds, 2.1e6 in chunks of 128 against 1.9e6 in chunks of 512; wine at 64 hidden units
#: 4.9e4 in chunks of 32 against 3.0e4 in chunks of 112). On one device of both cores, XLA
#: spreads each operation over them and wide chunks trained faster (1.36e6 in chunks of 512
#: against 0.96e6 in chunks of 144). A seed's numbers do not depend on it.
CACHE_TARGET = 2**19
#: `runtime.memory_budget`'s default: the training program's working memory, every device's chunk together.
DEFAULT_MEMORY_BUDGET = 2**31


class MemoryBudgetError(ValueError):
    """Not the least chunk (two seeds) per device fits the memory budget; the message says what
    one seed needs, and `needs` the budget that would hold the least chunk per device."""

    def __init__(self, message: str, needs: int) -> None:
        super().__init__(message)
        self.needs = needs


class ChunkChoice(NamedTuple):
    """The chunk width a population trains at, and why (`summary.json`'s `chunk`)."""

    size: int  # at most this many seeds per chunk (`chunking` evens the chunks out)
    chunks: int  # the chunks trained (`chunk_layout`)
    seeds_per_chunk: int
    asked: int | str  # train.chunk_size: "auto" or the width given
    seed_bytes: int  # the estimated working memory of one seed (`seed_bytes`)
    working_bytes: int  # the estimate for a chunk of `size` on every device (`chunk_bytes`)
    memory_budget: int
    devices: int
    reason: str


def seed_bytes(sizes: Sizes, rows: int, dtype: str = "float32", table_cells: int = 0) -> int:
    """An upper estimate of one seed's working memory in the population program, in bytes.

    Per row a seed is scored on (`rows`: training, validation and test together), 4 values
    per input and output and 10 per hidden unit (activations forward and backward, the
    loss's and the scores' passes); and when seeds draw their own split or noise inside the
    program, 6 per cell of the table (`table_cells`: its rows × features), for the seed's
    scaled copy of its parts and the temporaries that make it. Against XLA's own figure for
    the program (`memory_analysis`, the slope over chunks of 8 and 32 seeds) it was 1.2–5×
    on iris, wine, digits and a 100 000-row table (docs/scale.md).
    """
    per_row = 4 * (sizes.features + sizes.classes) + 10 * sum(hidden_widths(sizes))
    return jnp.dtype(dtype).itemsize * (rows * per_row + 6 * table_cells)


def core_each(devices: int) -> bool:
    """Does each of `devices` local devices have one CPU core of its own, or less (`CACHE_TARGET`)?"""
    return jax.default_backend() == "cpu" and devices >= usable_cores()


def activation_bytes(sizes: Sizes, rows: int, dtype: str = "float32") -> int:
    """One seed's activations over `rows` rows: every hidden unit's and output's value, in
    bytes (what one pass over the rows reads and writes per seed; `CACHE_TARGET`)."""
    return jnp.dtype(dtype).itemsize * rows * (sum(hidden_widths(sizes)) + sizes.classes)


def chunk_bytes(per_chunk: int, sizes: Sizes, rows: int, dtype: str = "float32", table_cells: int = 0) -> int:
    """The estimated working memory of a chunk of `per_chunk` seeds: `seed_bytes` each and,
    with data shared by every seed, the first layer's product for the seeds it pads to whole
    blocks (`model.shared_product`: two blocks of `model.SEED_BLOCK` at least; 2 values per
    row and unit of the first hidden layer for each padded seed, where the resident memory of
    a run grew by 1 when its chunks of 3 seeds went from one block to two)."""
    total = per_chunk * seed_bytes(sizes, rows, dtype, table_cells)
    if table_cells:  # a split per seed: products per seed, no blocks
        return total
    padded = max(2, -(-per_chunk // SEED_BLOCK)) * SEED_BLOCK
    return total + jnp.dtype(dtype).itemsize * 2 * rows * hidden_widths(sizes)[0] * (padded - per_chunk)


def scored_rows(raw: "RawSplits | None", *parts: np.ndarray | None) -> tuple[int, int]:
    """(rows, table cells) a population's memory depends on (`chunk_choice`): with a raw
    table every seed scales its own split of it (all its rows, and its cells); otherwise the
    rows of the shared `parts` (training, validation, test; None for a part left out)."""
    if raw is not None:
        return len(raw.table.labels), raw.table.x.size
    return sum(len(p) for p in parts if p is not None), 0


def population_devices(count: int) -> int:
    """The local devices a population of `count` seeds trains on: all of them, but at least
    two seeds each (see `population_spec`)."""
    return min(jax.local_device_count(), max(1, count // 2))


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def chunk_choice(
    count: int,
    sizes: Sizes,
    rows: int,
    *,
    chunk_size: int | str = "auto",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    dtype: str = "float32",
    table_cells: int = 0,
) -> ChunkChoice:
    """The chunk width for `count` seeds: `chunk_size` when it is an int, or with "auto" the
    most seeds per device in whole blocks of `SEED_BLOCK` (at most `MAX_CHUNK`, and no more
    than keep their activations within `CACHE_TARGET`, `least_chunk` at least) whose
    estimated working memory (`seed_bytes`), on every device at once, fits `memory_budget`.
    A seed's numbers do not depend on it. Where not `least_chunk` seeds fit, the widest
    narrower chunk that does, and the reason says that its seeds may differ in their
    last bits (`chunk_layout`).

    Raises:
      MemoryBudgetError: with "auto", when a chunk of two seeds (the least, `chunk_layout`)
        per device does not fit the budget.
    """
    devices = population_devices(count)
    one = seed_bytes(sizes, rows, dtype, table_cells)
    hidden = "+".join(map(str, hidden_widths(sizes)))
    what = f"one seed needs about {_size(one)} ({rows} rows through {sizes.features} inputs, {hidden} hidden"
    what += f" units and {sizes.classes} outputs" + (
        f"; its own split of {table_cells} cells)" if table_cells else ")"
    )

    def working(per_chunk: int) -> int:
        return devices * chunk_bytes(per_chunk, sizes, rows, dtype, table_cells)

    least = least_chunk(table_cells > 0)
    least_blocks = "a block" if least == SEED_BLOCK else "two blocks"
    per_core = core_each(devices)

    def choice(size: int, asked: int | str, reason: str) -> ChunkChoice:
        layout = chunk_layout(count, size, devices, least)
        return ChunkChoice(size, *layout, asked, one, working(size), memory_budget, devices, reason)

    differs = "a seed's last bits may differ from its own in chunks of whole blocks"
    narrower = f"narrower than {least_blocks} of {SEED_BLOCK} seeds"
    if chunk_size != "auto":
        size, given = int(chunk_size), f"train.chunk_size={chunk_size} as given"
        if size < least:
            given += f" ({narrower}: {differs})"
        elif size % SEED_BLOCK:
            whole = size // SEED_BLOCK * SEED_BLOCK
            given += f" (chunks of whole blocks of {SEED_BLOCK} seeds: at most {whole})"
        return choice(size, chunk_size, f"{given}; {what}")
    if working(2) > memory_budget:  # a chunk holds two seeds at least (`chunk_layout`)
        two = working(2) // devices
        padded = (
            f"; a chunk of two (the least), its first product padded to 32 seeds, {_size(two)}"
            if two > 2 * one
            else ""
        )
        raise MemoryBudgetError(
            f"{what}{padded}: more than runtime.memory_budget={_size(memory_budget)} holds on {devices} "
            "device(s)",
            working(2),
        )
    # Whole blocks of seeds where the budget holds two at least (`chunk_layout`), else the
    # widest narrower chunk it holds. `bound`: a chunk takes its seeds' memory at least.
    bound = int(min(MAX_CHUNK, memory_budget // (one * devices)))
    # ... and, where each device is one CPU core, its activations within the core's cache
    # (two blocks at least); a device with several cores spreads a wide chunk's operations
    # over them, and trained the article's network fastest in chunks of 512.
    act = activation_bytes(sizes, rows, dtype)
    cached = max(least, CACHE_TARGET // act // SEED_BLOCK * SEED_BLOCK) if per_core else MAX_CHUNK
    size = min(bound, cached) // SEED_BLOCK * SEED_BLOCK
    while size > least and working(size) > memory_budget:
        size -= SEED_BLOCK
    if size < least or working(size) > memory_budget:
        size = min(bound, least - 1)
        while size > 2 and working(size) > memory_budget:
            size -= 1
        narrow = f"{narrower}, which {_size(memory_budget)} over {devices} device(s) does not hold: {differs}"
        return choice(size, "auto", f"auto: {size} seeds per chunk ({narrow}); {what}")
    if size == MAX_CHUNK:
        limit = f"at most {MAX_CHUNK}" + ("" if per_core else f", {devices} device(s) of several cores")
    elif size == cached:
        limit = (
            f"their activations, {_size(size * act)}, within {_size(CACHE_TARGET)}, a core's cache"
            if size * act <= CACHE_TARGET
            else f"{least_blocks}, whose activations, {_size(size * act)}, outgrow {_size(CACHE_TARGET)}"
        )
    else:
        limit = f"{_size(memory_budget)} over {devices} device(s)"
    return choice(size, "auto", f"auto: {size} seeds per chunk ({limit}); {what}")


class RawSplits(NamedTuple):
    """Training on a raw table, split inside the program (see `splits.make_split`).

    Split s of a population uses key `source_keys("split", split_seed, [s])`, noise n
    `source_keys("noise", noise_seed, [n])`; which s and n each seed gets is `seed_indices`'s.
    """

    table: Table
    test_fraction: float = 0.2
    split_seed: int = 0
    noise_seed: int = 0
    noise: float = 0.0
    val_fraction: float = 0.0


def seed_indices(
    count: int, vary: Sequence[str] = ("init",), grid: Mapping[str, int] | None = None, start: int = 0
) -> dict[str, np.ndarray]:
    """Per seed i of seeds `start`..`start + count - 1`, the index of its draw of each
    source (`SOURCES`).

    A source named in `vary` follows i; the others stay at 0 (one draw for all seeds).
    With a `grid` {source: levels}, the population is a full factorial design: seed i is
    cell `np.unravel_index(i, levels)`, the first source varying slowest, and the sources
    not in the grid stay at 0. `{"split": S, "init": I}` gives seed i split i // I and
    initialisation i % I. A seed's draws depend on i alone, so seeds from `start` on are
    the same seeds as in a population from 0 (a slice of a grid is a run of its cells).
    """
    i = np.arange(start, start + count)
    if grid:
        cells = dict(zip(grid, np.unravel_index(i, tuple(grid.values()))))
        return {source: cells.get(source, np.zeros_like(i)) for source in SOURCES}
    return {source: i if source in vary else np.zeros_like(i) for source in SOURCES}


def _static(raw: "RawSplits") -> StaticTable:
    """A raw table's splits as a static argument of the program: noisy only when the noise is not 0."""
    return StaticTable(raw.table, raw.test_fraction, raw.val_fraction, noisy=raw.noise != 0)


def _chunk_data(indices, data, sources, raw: StaticTable | None, dtype):
    """The chunk's (x, y, x_val, y_val, x_test, y_test) and its seeds' test rows: shared by
    all seeds (test rows None), or a split per seed (seeds last; test rows (seeds, rows) of
    the table); the validation pair is None without a validation part."""
    if raw is None:
        return data, None
    splits = draw_splits(
        raw.table,
        source_keys("split", sources["split"], indices[1]),
        source_keys("noise", sources["noise"], indices[2]) if raw.noisy else None,
        test_fraction=raw.test_fraction,
        val_fraction=raw.val_fraction,
        noise=sources["scale"],
        dtype=dtype,
        keep_division=True,  # the same numbers on one device as on several (`splits.minmax_scale`)
    )
    x, y, x_test, y_test = (jnp.moveaxis(a, 0, -1) for a in splits[:4])  # seeds last
    if not raw.val_fraction:
        return (x, y, None, None, x_test, y_test), splits.test_idx
    x_val, y_val = (jnp.moveaxis(a, 0, -1) for a in (splits.x_val, splits.y_val))
    return (x, y, x_val, y_val, x_test, y_test), splits.test_idx


class Spec(NamedTuple):
    """The training program's static choices and shapes, built once per job and passed to
    `jit` as one static argument; the numbers a sweep changes are `Numbers`, traced."""

    sizes: Sizes
    net: Net
    init: str
    rule: str
    optimizer: Optimizer
    dtype: str
    epochs: int
    batch_size: int | None
    shared_order: bool  # one data order for every seed (order not varied)
    record_every: int
    progress: bool
    ties: str
    count: int
    chunks: int
    per_chunk: int
    devices: int
    raw: StaticTable | None  # a raw table split inside the program, or None
    rows: bool = False  # also return every seed's predicted class and correctness per test row
    poke: bool = False  # the poke source varies: some seeds' initial weights are moved (`poke_params`)


def _train_chunk(indices, base, numbers, data, sources, spec: Spec) -> Population:
    """Initialises and trains one chunk of seeds (seeds last), and scores them."""
    (x, y, x_val, y_val, x_test, y_test), test_rows = _chunk_data(
        indices, data, sources, spec.raw, spec.dtype
    )
    keys = source_keys("init", base, indices[0])
    params = seeds_last(_initial_params(indices, base, spec.sizes, spec.dtype, spec.init, spec.poke))
    opt = _optimizer(spec.optimizer, numbers)
    # one order for every seed (order not varied: all at draw 0), or one per seed
    order = source_keys("order", sources["order"], indices[3][:1] if spec.shared_order else indices[3])
    update = _update(spec, opt, x, y, order[0] if spec.shared_order else order)
    net, ties = spec.net, spec.ties

    def measure(p):
        return population_loss(p, x, y, net=net), population_accuracy(p, x_test, y_test, ties, net)

    every = _measured_every(spec)
    on_block = partial(progress_report, keys.shape[0] * every) if spec.progress else None
    params, curves = _descend(
        params, opt, update, measure, epochs=spec.epochs, record_every=every, on_block=on_block
    )
    curves = curves if spec.record_every else None
    final_loss = population_loss(params, x, y, net=net)
    leaves = jax.tree.leaves(params)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a), axis=tuple(range(a.ndim - 1))) for a in leaves]), 0)
    test = population_scores(params, x_test, y_test, ties, net)
    return Population(
        params=seeds_first(params),
        final_loss=final_loss,
        train_accuracy=population_accuracy(params, x, y, ties, net),
        test_accuracy=test.accuracy,
        diverged=~(jnp.isfinite(final_loss) & finite),
        curves=None if curves is None else Curves(*(c.T for c in curves)),
        val_accuracy=None if x_val is None else population_accuracy(params, x_val, y_val, ties, net),
        tied_rows=test.tied_rows,
        collapsed=test.collapsed,
        test_predicted=test.predicted if spec.rows else None,
        test_correct=test.correct if spec.rows else None,
        test_rows=test_rows.astype(jnp.int32) if spec.rows and test_rows is not None else None,
    )


def _measured_every(spec: Spec) -> int:
    """Epochs between measurements (and progress reports): `record_every`, or with a
    progress line and no curves a tenth of the epochs; 0 for neither."""
    return spec.record_every or (max(1, spec.epochs // 10) if spec.progress else 0)


def poke_params(params: Params, key: jax.Array) -> Params:
    """One network's parameters with one of them moved by one float step (`jnp.nextafter`).

    The parameter is drawn uniformly from all of them, in `jax.tree.leaves` order with each
    leaf row-major (for the article's net: w_hidden, b_hidden, w_out, b_out, 27 in all), and
    the direction, up or down with chance ½ each, from `key`. Every other number keeps its bits.
    """
    leaves, tree = jax.tree.flatten(params)
    flat = jnp.concatenate([a.ravel() for a in leaves])
    where_key, which_way = jax.random.split(key)
    index = jax.random.randint(where_key, (), 0, flat.size)
    toward = jnp.where(jax.random.bernoulli(which_way), jnp.inf, -jnp.inf).astype(flat.dtype)
    moved = jnp.where(jnp.arange(flat.size) == index, jnp.nextafter(flat, toward), flat)
    sizes = np.cumsum([a.size for a in leaves])[:-1].tolist()
    parts = jnp.split(moved, sizes) if sizes else [moved]
    return jax.tree.unflatten(tree, [p.reshape(a.shape) for p, a in zip(parts, leaves)])


def _initial_params(indices, base, sizes: Sizes, dtype, init: str, poke: bool) -> Params:
    """Seeds-first initial parameters of the seeds `indices` gives (`population_layout`'s rows):
    draw `indices[0]` of init, poked (`poke_params`) with draw `indices[4]` of the poke stream of
    base seed `base` where that index is not 0. Level 0 is the seed's own weights, bit for bit."""
    draw = partial(draw_params, sizes=sizes, dtype=dtype, init=init)
    params = jax.vmap(draw)(source_keys("init", base, indices[0]))
    if not poke:
        return params
    level = indices[SOURCES.index("poke")]
    poked = jax.vmap(poke_params)(params, source_keys("poke", base, level))
    return jax.tree.map(
        lambda p, q: jnp.where((level > 0).reshape(-1, *[1] * (p.ndim - 1)), q, p), params, poked
    )


def initial_params(
    base: int,
    count: int,
    sizes: Sizes,
    *,
    vary: Sequence[str] = ("init",),
    grid: Mapping[str, int] | None = None,
    dtype: str = "float32",
    init: str = "uniform01",
) -> Params:
    """The initial parameters (leading seed axis) that `train_population` starts its seeds from,
    poke included: for checking what a population was trained from."""
    indices = np.stack([a for a in seed_indices(count, vary, grid).values()]).astype(np.uint32)
    poke = "poke" in (grid or vary)
    return jax.jit(_initial_params, static_argnums=(2, 3, 4, 5))(
        indices, np.uint32(base), sizes, dtype, init, poke
    )


@partial(jax.jit, static_argnames="spec")
def run_population(base, numbers: Numbers, data, indices, sources, spec: Spec) -> Population:
    """The population program: `spec.chunks` chunks of `spec.per_chunk` seeds, run one after
    another by `lax.map` (memory is bounded by a chunk) and shared out among `spec.devices`
    local devices (`jax.shard_map`). `indices` is `population_layout`'s."""
    chunks, per_chunk, count = spec.chunks, spec.per_chunk, spec.count
    indices = jnp.moveaxis(indices.reshape(len(SOURCES), chunks, per_chunk), 1, 0)  # (chunks, sources, seeds)
    data = None if data is None else tuple(None if a is None else jnp.asarray(a, spec.dtype) for a in data)

    def run(indices, base, numbers, data, sources):
        return jax.lax.map(lambda i: _train_chunk(i, base, numbers, data, sources, spec), indices)

    if spec.devices > 1:  # each local device trains its share of the chunks
        mesh = jax.make_mesh(
            (spec.devices,),
            ("seeds",),
            axis_types=(jax.sharding.AxisType.Auto,),
            devices=jax.local_devices()[: spec.devices],
        )
        split, shared = jax.sharding.PartitionSpec("seeds"), jax.sharding.PartitionSpec()
        run = jax.shard_map(run, mesh=mesh, in_specs=(split,) + (shared,) * 4, out_specs=split)
        indices = jax.lax.with_sharding_constraint(indices, jax.sharding.NamedSharding(mesh, split))
    population = run(indices, base, numbers, data, sources)
    return jax.tree.map(lambda a: a.reshape(chunks * per_chunk, *a.shape[2:])[:count], population)


def population_layout(
    spec: Spec, varied: Sequence[str], grid: Mapping[str, int] | None = None, start: int = 0
) -> np.ndarray:
    """Each source's draw for every seed `spec` trains (seeds `start`.. on), (len(SOURCES),
    chunks × seeds per chunk) uint32: padded to whole chunks with seeds that repeat the
    first seeds' draws (dropped at the end)."""
    wanted = seed_indices(spec.count, varied, grid or None, start)
    trained = spec.chunks * spec.per_chunk
    return np.stack([np.resize(wanted[source], trained) for source in SOURCES]).astype(np.uint32)


def _check_sources(vary: Sequence[str], grid: Mapping[str, int] | None, raw, batch_size) -> tuple[str, ...]:
    """The sources that vary across seeds, checked against what the run has."""
    varied = tuple(s for s in (grid or {}) if grid[s] > 1) if grid else tuple(vary)
    unknown = [s for s in (*varied, *(grid or {})) if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source {unknown[0]!r}; expected one of {', '.join(SOURCES)}")
    if raw is None and set(varied) & {"split", "noise"}:
        raise ValueError("varying the split or the noise needs a raw table (raw=RawSplits(...))")
    if batch_size is None and "order" in varied:
        raise ValueError("varying the data order needs a batch_size (full-batch training has no order)")
    return varied


def population_spec(
    count: int,
    sizes: Sizes,
    *,
    epochs: int,
    rule: str = "autodiff",
    optimizer: str = "sgd",
    dtype: str = "float32",
    chunk_size: int = MAX_CHUNK,
    record_every: int = 0,
    progress: bool = False,
    raw: StaticTable | None = None,
    batch_size: int | None = None,
    steps_per_epoch: int = 1,
    shared_order: bool = True,
    ties: str = "strict",
    net: Net = ARTICLE,
    init: str = "uniform01",
    decay: bool = False,
    schedule: str = "constant",
    rows: bool = False,
    poke: bool = False,
) -> Spec:
    """The `Spec` of a population of `count` seeds (see `train_population`): the devices
    that train it and its chunks, decided here once.

    A device gets at least two seeds (a single seed runs on one device), and a chunk is whole
    blocks of 16 seeds, `least_chunk` at least (two with shared data, one where each seed
    has a split of its own; `chunk_layout`): a chunk of one seed, or one narrower than XLA's
    vectors or not a multiple of them, or with shared data of one block, computed otherwise,
    its seeds' last bits unlike the same seeds' in wider chunks. Chunks of whole blocks, as
    many as `least_chunk` or more, agree bit for bit.
    """
    devices = population_devices(count)
    chunks, per_chunk = chunk_layout(count, chunk_size, devices, least_chunk(raw is not None))
    return Spec(
        sizes=sizes,
        net=net,
        init=init,
        rule=rule,
        optimizer=Optimizer(optimizer, schedule, epochs * steps_per_epoch, decay),
        dtype=jnp.dtype(dtype).name,
        epochs=epochs,
        batch_size=batch_size,
        shared_order=shared_order,
        record_every=record_every,
        progress=progress,
        ties=ties,
        count=count,
        chunks=chunks,
        per_chunk=per_chunk,
        devices=devices,
        raw=raw,
        rows=rows,
        poke=poke,
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
    chunk_size: int | str = MAX_CHUNK,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    record_every: int = 0,
    progress: bool = False,
    raw: RawSplits | None = None,
    vary: Sequence[str] = ("init",),
    grid: Mapping[str, int] | None = None,
    val_xy: tuple[np.ndarray, np.ndarray] | None = None,
    batch_size: int | None = None,
    order_seed: int = 0,
    ties: str = "strict",
    net: Net = ARTICLE,
    init: str = "uniform01",
    weight_decay: float | None = None,
    schedule: str = "constant",
    warmup: float = 0.1,
    row_results: bool = False,
    start: int = 0,
) -> Population:
    """Trains `count` seeds of base seed `base` in one jit-compiled program and scores them.

    Seed i starts from `init_params(fold_in(key(base), i), sizes, init=init)` and is trained
    as `train` would train it: `lax.scan` runs the epochs over a population laid out with
    seeds last (`model.seeds_last`), in chunks of at most `chunk_size` seeds that `lax.map`
    runs one after another (memory is bounded by a chunk), shared out among the local
    devices (`jax.shard_map`); `chunk_size="auto"` picks the widest chunk whose estimated
    working memory fits `memory_budget` bytes (`chunk_choice`). The static choices and
    shapes make one `Spec`; the base seed, learning rate, weight decay and warmup share
    are traced: changing them reuses the compiled program. A seed's numbers do not depend
    on the chunk width or the device count (`model.shared_product`).

    With `record_every` k > 0, `curves` holds each seed's training loss and test accuracy
    at epochs 0, k, 2k, ... (`curve_epochs(epochs, k)`).

    With `progress`, the program reports each block of epochs to the active
    `gophernet_jax.progress.Progress` (the CLI draws it on a terminal).

    With `raw`, `train_xy`, `test_xy` and `val_xy` are ignored: every seed is trained,
    validated and tested on a split of `raw.table` made inside the program, with the
    draws of each source that `seed_indices(count, vary, grid)` gives it.

    With `batch_size`, every epoch visits the training rows in mini-batches, in an order
    drawn from `source_keys("order", order_seed, [j])` and the epoch (`epoch_order`):
    one order j = 0 for every seed, unless `order` is in `vary` or `grid`.

    With `start`, the seeds are `start`..`start + count - 1`: seed i is the same seed, bit
    for bit, as seed i of a population from 0 (a slice of it; `seeds.start`).

    `net` (activation and loss), `init`, `weight_decay`, `schedule` and `warmup`: see
    `model.Net`, `model.init_params` and `make_optimizer`. Scores follow `ties`
    (`model.TIES`); with `row_results`, `test_predicted` and `test_correct` hold every seed's
    predicted class and correctness per test row ((count, test rows): 2 bytes a cell).

    With `poke` in `vary` or `grid`, seed i's initial weights are moved by one float step
    in one weight where its poke level is not 0 (`poke_params`, drawn from
    `source_keys("poke", base, [level])`): `grid={"init": I, "poke": P}` separates the
    spread of initialisations from the chaos of training.

    A seed whose loss or parameters go non-finite is flagged in `diverged`; it never stops
    the others.

    Returns:
      `Population` with a leading seed axis of length `count`; `val_accuracy` is None
      without a validation part.
    """
    if jnp.dtype(dtype) == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError("dtype float64 needs jax_enable_x64: jax.config.update('jax_enable_x64', True)")
    make_optimizer(optimizer, 0.0, schedule=schedule)  # fail early, before tracing
    sizes = static_sizes(sizes)
    check_rule(rule, net, sizes)
    varied = _check_sources(vary, grid, raw, batch_size)
    rows = raw_training_rows(raw) if raw is not None else len(train_xy[0])
    if batch_size is not None and not 1 <= batch_size <= rows:
        raise ValueError(f"batch_size must be in [1, {rows}] (the training rows), got {batch_size}")
    if chunk_size == "auto":
        scored, cells = scored_rows(raw, train_xy[0], None if val_xy is None else val_xy[0], test_xy[0])
        choice = chunk_choice(
            count, sizes, scored, memory_budget=memory_budget, dtype=dtype, table_cells=cells
        )
        chunk_size = choice.size
    seeds = {"split": 0, "noise": 0, "order": order_seed}
    if raw is not None:
        seeds |= {"split": raw.split_seed, "noise": raw.noise_seed}
    sources = {k: np.uint32(v) for k, v in seeds.items()}
    sources["scale"] = np.asarray(0.0 if raw is None else raw.noise, dtype)
    data, constant = None, None
    if raw is None:
        val = val_xy if val_xy is not None else (None, None)
        data = (*train_xy, *val, *test_xy)
    else:
        constant = _static(raw)
    spec = population_spec(
        count, sizes, epochs=epochs, rule=rule, optimizer=optimizer, dtype=dtype, chunk_size=chunk_size,
        record_every=record_every, progress=progress, raw=constant, batch_size=batch_size,
        steps_per_epoch=steps_per_epoch(rows, batch_size),
        shared_order="order" not in varied, ties=ties, net=net, init=init,
        decay=weight_decay is not None, schedule=schedule, rows=row_results, poke="poke" in varied,
    )  # fmt: skip
    indices = population_layout(spec, varied, grid, start)
    numbers = Numbers.of(learning_rate, weight_decay, warmup, dtype)
    if progress:  # what the program reports: its padding seeds, whole blocks of epochs
        every = _measured_every(spec)
        expect_progress(spec.chunks * spec.per_chunk * (spec.epochs // every) * every)
    # NumPy arguments: a jnp conversion here would compile a small program of its own.
    return run_population(np.uint32(base), numbers, data, indices, sources, spec)


@partial(jax.jit, static_argnames=("raw", "dtype"))
def _first_split(x, split_seed, noise_seed, noise, raw: StaticTable, dtype: str):
    split = draw_split(
        raw.with_features(x),
        draw_key("split", split_seed),
        draw_key("noise", noise_seed) if raw.noisy else None,
        test_fraction=raw.test_fraction,
        val_fraction=raw.val_fraction,
        noise=noise,
        dtype=dtype,
    )
    low, span = minmax_fit(jnp.asarray(x, dtype)[split.train_idx])
    return split, low, span


def first_split(raw: RawSplits, dtype: str = "float32") -> tuple[Split, jax.Array, jax.Array]:
    """Split 0 of a raw table with noise draw 0 (what every seed trains on when neither
    varies), and the min-max scaling (minimum, span) fitted on its raw training rows: one
    program, the same numbers as `make_split` with `draw_key("split", raw.split_seed)` and
    `draw_key("noise", raw.noise_seed)`."""
    constant = _static(raw)
    seeds = np.uint32(raw.split_seed), np.uint32(raw.noise_seed)
    x = np.asarray(raw.table.x, dtype)
    return _first_split(x, *seeds, np.asarray(raw.noise, dtype), constant, jnp.dtype(dtype).name)


def raw_training_rows(raw: RawSplits) -> int:
    """Training rows of every split of a raw table (see `splits.split_sizes`)."""
    sizes = split_sizes(raw.table.labels, raw.test_fraction, val_fraction=raw.val_fraction)
    return sizes[0]
