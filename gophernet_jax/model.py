"""The network family: the article's 4-3-3 sigmoid net is one member of a small MLP family.

A network is its `Params` (widths are their shapes) and a `Net`: the hidden activation and
the loss, which decides the outputs (sigmoid for `sse`/`mse`, softmax for `cross_entropy`).
Every per-network function here works on one network; `jax.vmap` makes it work on many.
The population functions below work on many at once, laid out with the seed axis last.
"""

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.custom_derivatives import SymbolicZero


class Params(NamedTuple):
    """A network's weights, named as in the article (wHidden, bHidden, wOut, bOut).

    The article's net has one hidden layer; a deeper one keeps its second and later hidden
    layers in `w_deeper`/`b_deeper` (empty for one layer, so the article's pytree is its
    four arrays).
    """

    w_hidden: jax.Array  # (features, hidden) the first hidden layer
    b_hidden: jax.Array  # (hidden,)
    w_out: jax.Array  # (last hidden, classes)
    b_out: jax.Array  # (classes,)
    w_deeper: tuple[jax.Array, ...] = ()  # (units before, units) per later hidden layer
    b_deeper: tuple[jax.Array, ...] = ()


class Sizes(NamedTuple):
    """Layer widths: input features, hidden units (an int, or a tuple for several layers), classes."""

    features: int
    hidden: int | tuple[int, ...]
    classes: int


def hidden_widths(sizes: Sizes) -> tuple[int, ...]:
    """The hidden layers' widths, first to last."""
    return (sizes.hidden,) if isinstance(sizes.hidden, int) else tuple(sizes.hidden)


def static_sizes(sizes: Sizes | tuple) -> Sizes:
    """`sizes` as a hashable `Sizes`, a static argument of `jit`: several hidden widths as a tuple."""
    hidden = sizes[1] if isinstance(sizes[1], int) else tuple(sizes[1])
    return Sizes(sizes[0], hidden, sizes[2])


def layer_shapes(sizes: Sizes) -> list[tuple[int, int]]:
    """(inputs, outputs) of every layer's weights, first hidden layer to output layer."""
    widths = (sizes.features, *hidden_widths(sizes), sizes.classes)
    return list(zip(widths[:-1], widths[1:]))


def param_count(sizes: Sizes) -> int:
    """Number of parameters of a network of these sizes (27 for the article's 4-3-3)."""
    return sum(a * b + b for a, b in layer_shapes(sizes))


#: Hidden activations (`model.activation`), from `jax.nn`.
ACTIVATIONS = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu, "gelu": jax.nn.gelu}
#: Losses (`train.loss`): `sse` is the article's ½·Σ(y − out)² summed over rows, `mse` the
#: same averaged over rows, both on sigmoid outputs; `cross_entropy` is softmax
#: cross-entropy averaged over rows.
LOSSES = ("sse", "mse", "cross_entropy")
#: Initialisations (`model.init`): `uniform01` is the article's U[0, 1) for every weight and
#: bias; the others are `jax.nn.initializers`' for the weights, with biases at zero.
INITS = ("uniform01", "glorot_uniform", "he_normal", "lecun_normal")


class Net(NamedTuple):
    """What a network computes beyond its widths: static, hashable."""

    activation: str = "sigmoid"
    loss: str = "sse"


#: The article's network: sigmoid hidden units, sigmoid outputs, summed squared error.
ARTICLE = Net()


def _draw_uniform01(key: jax.Array, sizes: Sizes, dtype) -> list[jax.Array]:
    # One draw of every number, cut in the article's fill order (wHidden row-major,
    # bHidden, ..., wOut row-major, bOut): one draw per seed keeps the program quick to compile.
    flat = jax.random.uniform(key, (param_count(sizes),), dtype=dtype)
    parts, start = [], 0
    for a, b in layer_shapes(sizes):
        parts += [flat[start : start + a * b].reshape(a, b), flat[start + a * b : start + a * b + b]]
        start += a * b + b
    return parts


def _draw_standard(key: jax.Array, sizes: Sizes, dtype, init: str) -> list[jax.Array]:
    draw = getattr(jax.nn.initializers, init)()
    shapes = layer_shapes(sizes)
    keys = jax.random.split(key, len(shapes))
    weights = [draw(k, (a, b), dtype) for k, (a, b) in zip(keys, shapes)]
    # zeros_like(w[0]): every seed gets zeros of its own under vmap. Unbatched zeros (jnp.zeros)
    # gave wrong bias steps for populations of more than one seed (tests/test_training.py).
    return [p for w in weights for p in (w, jnp.zeros_like(w[0]))]


def draw_params(
    key: jax.Array, sizes: Sizes, dtype: jnp.dtype = jnp.float32, init: str = "uniform01"
) -> Params:
    """`init_params`'s computation, for use inside a program (`jit`, `vmap`)."""
    parts = (
        _draw_uniform01(key, sizes, dtype) if init == "uniform01" else _draw_standard(key, sizes, dtype, init)
    )
    w, b = parts[0::2], parts[1::2]
    return Params(w[0], b[0], w[-1], b[-1], tuple(w[1:-1]), tuple(b[1:-1]))


_init_program = jax.jit(draw_params, static_argnames=("sizes", "dtype", "init"))


def init_params(
    key: jax.Array, sizes: Sizes, dtype: jnp.dtype = jnp.float32, init: str = "uniform01"
) -> Params:
    """A network's initial parameters.

    `uniform01` (the article's) draws every parameter, biases included, uniform on [0, 1),
    in one draw cut in the article's fill order. The others (`INITS`) draw each layer's
    weights with `jax.nn.initializers.<init>` from its own key (`split(key, layers)`),
    biases at zero. Compiled as one program per sizes, dtype and init (`draw_params` is the
    same computation for use inside a program of one's own).

    Args:
      key: a `jax.random` key.
      sizes: `Sizes(features, hidden, classes)`, e.g. `Sizes(4, 3, 3)` or `Sizes(64, (64, 64), 10)`.
      dtype: floating dtype of the parameters.
      init: one of `INITS`.

    Returns:
      `Params`; w_hidden (features, first hidden), ..., w_out (last hidden, classes).

    Example:
      >>> p = init_params(jax.random.key(0), Sizes(4, 3, 3))
      >>> p.w_hidden.shape
      (4, 3)
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")
    return _init_program(key, static_sizes(sizes), jnp.dtype(dtype), init)


def hidden_layers(params: Params) -> list[tuple[jax.Array, jax.Array]]:
    """(weights, biases) of every hidden layer, first to last."""
    return [(params.w_hidden, params.b_hidden), *zip(params.w_deeper, params.b_deeper)]


def outputs_of(logits: jax.Array, net: Net, axis: int = -1) -> jax.Array:
    """The network's outputs from its output layer's pre-activations: softmax over the
    classes for `cross_entropy`, a sigmoid each otherwise."""
    return jax.nn.softmax(logits, axis=axis) if net.loss == "cross_entropy" else jax.nn.sigmoid(logits)


def hidden_and_logits(params: Params, x: jax.Array, net: Net = ARTICLE) -> tuple[jax.Array, jax.Array]:
    """Forward pass keeping the last hidden layer's activations, which backpropagation needs."""
    act, hidden = ACTIVATIONS[net.activation], x
    for w, b in hidden_layers(params):
        hidden = act(hidden @ w + b)
    return hidden, hidden @ params.w_out + params.b_out


def hidden_and_output(params: Params, x: jax.Array, net: Net = ARTICLE) -> tuple[jax.Array, jax.Array]:
    """Forward pass keeping the last hidden layer's activations, and the outputs."""
    hidden, logits = hidden_and_logits(params, x, net)
    return hidden, outputs_of(logits, net)


def forward(params: Params, x: jax.Array, net: Net = ARTICLE) -> jax.Array:
    """The network's outputs, one row per sample, one column per class, each in (0, 1)."""
    return hidden_and_output(params, x, net)[1]


def loss(
    params: Params, x: jax.Array, y: jax.Array, net: Net = ARTICLE, weights: jax.Array | None = None
) -> jax.Array:
    """The training loss of `net.loss` (see `LOSSES`), rows weighted by `weights` if given.

    `sse` is summed as in the article, so that a learning rate means what it means there:
    0.3 on this sum is 0.3 · n on the mean. `mse` and `cross_entropy` average over rows
    (a weighted mean with `weights`).
    """
    logits = hidden_and_logits(params, x, net)[1]
    w = jnp.ones(x.shape[0], logits.dtype) if weights is None else weights
    if net.loss == "cross_entropy":
        return jnp.sum(w * optax.softmax_cross_entropy(logits, y)) / jnp.sum(w)
    total = 0.5 * jnp.sum(w[:, None] * (y - jax.nn.sigmoid(logits)) ** 2)
    return total if net.loss == "sse" else total / jnp.sum(w)


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
    """Per row: the class of the largest output, or -1 where that maximum is tied or an
    output is not finite (a diverged network's NaN is no class; argmax would say the first)."""
    no_class = tied(outputs) | ~jnp.all(jnp.isfinite(outputs), axis=-1)
    return jnp.where(no_class, -1, jnp.argmax(outputs, axis=-1))


def collapsed(outputs: jax.Array) -> jax.Array:
    """Over the rows axis (-2): does the network tie on, or predict one class for, every row?

    Such a network has learnt nothing about its input: every row it does not tie on gets
    the same class. `outputs` (..., rows, classes) gives (...,).
    """
    pred = predicted_class(outputs)
    used = jnp.any(pred[..., None] == jnp.arange(outputs.shape[-1]), axis=-2)
    return jnp.sum(used, axis=-1) <= 1


def accuracy(
    params: Params, x: jax.Array, y: jax.Array, ties: str = "strict", net: Net = ARTICLE
) -> jax.Array:
    """Share of rows classified correctly (see `correct`; `ties="article"` is the article's count)."""
    outputs = forward(params, x, net)
    return jnp.mean(correct(outputs, y, ties), dtype=outputs.dtype)


# A population of networks with the seed axis last: w_hidden (features, hidden, seeds),
# b_hidden (hidden, seeds), ..., w_out (hidden, classes, seeds), b_out (classes, seeds).
# With seeds on the minor axis, the contraction with the shared data is a matrix product
# for many seeds at once, and the per-seed products of few units vectorise across seeds;
# this runs several times faster on a CPU than `vmap` over a leading axis.


def seeds_last(params: Params) -> Params:
    """Moves a population's leading seed axis to the end (see above)."""
    return jax.tree.map(lambda a: jnp.moveaxis(a, 0, -1), params)


def seeds_first(params: Params) -> Params:
    """Moves a population's trailing seed axis to the front: `Params` of a leading seed axis."""
    return jax.tree.map(lambda a: jnp.moveaxis(a, -1, 0), params)


def per_seed(a: jax.Array) -> jax.Array:
    # Data shared by every seed is (samples, columns); data of its own per seed (a split
    # per seed) is (samples, columns, seeds). Both broadcast against (samples, columns, seeds).
    return a if a.ndim == 3 else a[:, :, None]


#: Seeds per block of a product with shared data (`shared_product`); a chunk of seeds is
#: whole blocks wide too (`training.chunk_layout`).
SEED_BLOCK = 16


def shared_product(x: jax.Array, w: jax.Array, contract: int = 1, apart: bool = False) -> jax.Array:
    """Σ_k x[n, k] · w[k, j, s] (`contract=1`) or Σ_k x[k, n] · w[k, j, s] (`contract=0`):
    shared data times a seeds-last array, (n, units, seeds), one matrix product per block
    of `SEED_BLOCK` seeds (the seed axis padded with zeros to whole blocks, two at least).

    Every block's product has the same shape whatever the number of seeds, so a seed's
    numbers do not depend on the width of its chunk. One product of width units × seeds
    does: XLA's CPU matrix product (oneDNN's sgemm, which picks its kernel from the CPU at
    run time) changes its arithmetic with that width on CPUs without AVX-512
    (`ONEDNN_MAX_CPU_ISA=AVX2` shows it on any x86-64 machine). Measured under those
    kernels: over 4 features and 75 or 121 rows, one product of 496 seeds or more computed
    its first 16 seeds otherwise than one of 16 to 256; with XLA's threads cut to one
    (`PJRT_NPROC=1`) the forward product agreed at every width, but its transpose over the
    rows (what autodiff computes for the weights' gradient) still did not (README, Speed).

    Over at most `UNROLL` features (`contract=1`, the article's 4) the product is
    `few_features_product`: the same numbers without a matrix product, and its gradient
    the same blocked product over the rows.

    With `apart`, `w` is laid out in blocks by a computation of its own (`_apart`), which
    XLA cannot fuse with the elementwise arithmetic that makes `w`.
    """
    if contract == 1 and x.shape[1] <= UNROLL:
        return few_features_product(x, w)
    return _blocked_product(x, w, contract, apart)


def _apart(f: Callable[[jax.Array], jax.Array], a: jax.Array) -> jax.Array:
    """`f(a)` in a computation of its own: a conditional whose two branches are both `f`
    (its predicate, `a`'s first number equal to itself, is one XLA cannot decide when it
    compiles), so XLA cannot fuse what makes `a` into `f`.

    XLA's CPU compiler fuses the elementwise producers of a transposing copy into the copy,
    and compiles the whole as one loop in the copy's transposed order, which it does not
    vectorise; it removes `lax.optimization_barrier` before it fuses, so that barrier does
    not keep them apart. Measured on the article rule at the article's shape (2-core
    AVX-512 AMD EPYC, 2026-12-07): the copy into blocks of the hidden units' δ took 395 µs
    of an epoch of 512 seeds with δ's arithmetic fused in, 31 µs on its own beside the 58 µs
    loop that makes δ, and `bench --rules article` at 1000 seeds ran 1.66-1.78e6 seed-epochs/s
    against 1.10-1.15e6. A loop of its own also rounds δ otherwise in the last place: there
    every multiply-add of the sum over outputs and of the slope's polynomial is one fused
    multiply-add (a NumPy emulation of that matches it bit for bit), while the transposing
    loop matched no emulated choice of which to fuse (README, the reference study)."""
    first = a[(0,) * a.ndim]
    return jax.lax.cond(first == first, f, f, a)


def _blocked_product(x: jax.Array, w: jax.Array, contract: int, apart: bool = False) -> jax.Array:
    k, units, seeds = w.shape
    # At least two blocks: under oneDNN's AVX2 kernels a product of one block computes
    # otherwise than the same block among several (ONEDNN_MAX_CPU_ISA=AVX2: every seed of a
    # chunk of up to 16 differed from itself in a wider chunk after 300 epochs).
    blocks = max(2, -(-seeds // SEED_BLOCK))

    def to_blocks(w: jax.Array) -> jax.Array:
        w = jnp.pad(w, ((0, 0), (0, 0), (0, blocks * SEED_BLOCK - seeds)))
        w = jnp.moveaxis(w.reshape(k, units, blocks, SEED_BLOCK), 2, 0)
        return w.reshape(blocks, k, units * SEED_BLOCK)

    w = _apart(to_blocks, w) if apart else to_blocks(w)
    xb = jnp.broadcast_to(x, (blocks, *x.shape))
    out = jax.lax.dot_general(xb, w, (((1 + contract,), (1,)), ((0,), (0,))))  # (blocks, n, units·block)
    n = out.shape[1]
    out = jnp.moveaxis(out.reshape(blocks, n, units, SEED_BLOCK), 0, 2)
    return out.reshape(n, units, blocks * SEED_BLOCK)[:, :, :seeds]


@jax.custom_jvp
def few_features_product(x: jax.Array, w: jax.Array) -> jax.Array:
    """Σ_k x[n, k] · w[k, j, s] over a few features, as multiply-adds across the seeds:
    (n, units, seeds), no matrix product.

    XLA fuses it with what follows (the hidden layer's bias and activation), where the
    blocked matrix product (`shared_product`) was a product, a transpose into the seeds-last
    layout, and a fused activation reading that transpose: at the article's shape it trains
    1.2-1.5x as fast (README, Speed). Each term is added as `x·w + sum`, the product first,
    which XLA's code contracts into one fused multiply-add per feature in feature order:
    oneDNN's sgemm computes a column over a few features the same way, so the numbers are
    the blocked product's bit for bit where its kernels are AVX-512 or SSE4.1 (every
    committed study); under its AVX2 kernels some shapes differ in the last bit (77 rows
    onto 16 units from 4 features on). Elementwise across the seeds, a seed's numbers do
    not depend on its chunk (chunks are whole blocks of `SEED_BLOCK` seeds).

    Its derivative in the weights is the blocked product itself (a `custom_jvp`), so the
    gradient, the blocked product's transpose over the rows, is what it was before.
    """
    out = x[:, 0, None, None] * w[0]
    for i in range(1, x.shape[1]):
        out = x[:, i, None, None] * w[i] + out
    return out


@partial(few_features_product.defjvp, symbolic_zeros=True)
def _few_features_jvp(primals, tangents):
    (x, w), (dx, dw) = primals, tangents
    out = few_features_product(x, w)
    # Symbolic zeros (the data is not differentiated in training) cost nothing. JAX calls
    # this rule only when x or w is perturbed, so one part at least is there.
    parts = [] if type(dw) is SymbolicZero else [_blocked_product(x, dw, 1)]
    parts += [] if type(dx) is SymbolicZero else [few_features_product(dx, w)]
    return out, sum(parts[1:], parts[0])


#: Per-seed products over at most this many inputs are unrolled into elementwise
#: multiply-adds across the seeds (the article's 3 hidden units, 4 features): measured
#: fastest there, and their program grows with the inputs only up to this bound.
UNROLL = 8


def per_seed_product(h: jax.Array, w: jax.Array) -> jax.Array:
    """Σ_j h[n, j, s] · w[j, k, s]: every seed's own product, (n, outputs, seeds).

    Over at most `UNROLL` inputs, multiply-adds across the seeds; wider, one batched matrix
    product with the seeds moved first, also onto a classifier's few outputs (there it trained
    digits at 32 hidden units 1.3–1.4× as fast as a fused multiply-and-reduce across the
    seeds, which held rows × inputs × outputs per seed). Neither form grows with the width
    past `UNROLL` inputs, so neither does the compile time. Each seed's product has the same
    shape whatever the chunk's width, and computed the same numbers at any width on AVX2
    kernels (tests/test_training.py checks a softmax network's seed across chunks).

    Onto at most `FEW_OUTPUTS` outputs the batched product's gradient in h is taken another
    way (`_few_outputs_product`).
    """
    inputs = w.shape[0]
    if inputs <= UNROLL:
        return sum(h[:, j, None, :] * w[j] for j in range(inputs))
    if w.shape[1] <= FEW_OUTPUTS:
        return _few_outputs_product(h, w)
    return _batched_product(h, w)


#: Per-seed products onto at most this many outputs (a classifier's output layer) take
#: their gradient in the inputs as multiply-adds over the outputs (`_few_outputs_product`).
FEW_OUTPUTS = 16


def _batched_product(h: jax.Array, w: jax.Array) -> jax.Array:
    first = jnp.matmul(jnp.moveaxis(h, -1, 0), jnp.moveaxis(w, -1, 0))  # (seeds, n, outputs)
    return jnp.moveaxis(first, 0, -1)


@jax.custom_jvp
def _few_outputs_product(h: jax.Array, w: jax.Array) -> jax.Array:
    """The batched product (`per_seed_product`), whose gradient in h, Σ_k δ[n, k, s] · w[j, k, s],
    is a multiply-add over the few outputs across the seeds rather than the batched product's
    transpose: a matrix product contracting over those few outputs, between two transposes
    of rows × inputs × seeds. XLA fuses the multiply-adds with the activation's derivative.
    Measured 2026-12-06 on a 2-core AVX-512 AMD EPYC (`python -m gophernet_jax.netbench
    project`, 200 seeds × 100 epochs): wine at 64 hidden units 1.5x as fast, digits at 32
    1.05x, wine at [64, 64] 1.1x; digits' numbers unchanged bit for bit, wine's in the last bit
    of some entries (the transposed product over 3 outputs rounded otherwise). The gradient in
    w is the batched product's, unchanged. Elementwise across the seeds, a seed's numbers do
    not depend on its chunk."""
    return _batched_product(h, w)


@partial(_few_outputs_product.defjvp, symbolic_zeros=True)
def _few_outputs_jvp(primals, tangents):
    (h, w), (dh, dw) = primals, tangents
    # Tangent in h: Σ_j dh[n, j, s] · w[j, k, s] (rows × inputs × outputs × seeds, before
    # the sum); its transpose, what a gradient computes, is the multiply-add over k.
    parts = [] if type(dw) is SymbolicZero else [_batched_product(h, dw)]
    parts += [] if type(dh) is SymbolicZero else [jnp.sum(dh[:, :, None, :] * w[None], axis=1)]
    return _batched_product(h, w), sum(parts[1:], parts[0])


def _product(h: jax.Array, w: jax.Array) -> jax.Array:
    # Shared data (samples, inputs) or a seed's own (samples, inputs, seeds), times w.
    return shared_product(h, w) if h.ndim == 2 else per_seed_product(h, w)


def population_hidden_and_logits(
    params: Params, x: jax.Array, net: Net = ARTICLE
) -> tuple[jax.Array, jax.Array]:
    """Every seed's forward pass: last hidden layer (samples, hidden, seeds), and the output
    layer's pre-activations (samples, classes, seeds).

    `x` is (samples, features), shared by every seed, or (samples, features, seeds).
    """
    act, hidden = ACTIVATIONS[net.activation], x
    for w, b in hidden_layers(params):
        hidden = act(_product(hidden, w) + b)
    return hidden, _product(hidden, params.w_out) + params.b_out


def population_hidden_and_output(
    params: Params, x: jax.Array, net: Net = ARTICLE
) -> tuple[jax.Array, jax.Array]:
    """Every seed's forward pass: hidden (samples, hidden, seeds), outputs (samples, classes, seeds)."""
    hidden, logits = population_hidden_and_logits(params, x, net)
    return hidden, outputs_of(logits, net, axis=1)


def row_weights(weights: jax.Array) -> jax.Array:
    """Row weights (samples,) or (samples, seeds), broadcast against (samples, classes, seeds)."""
    return weights[:, None, None] if weights.ndim == 1 else weights[:, None, :]


def population_loss(
    params: Params, x: jax.Array, y: jax.Array, weights: jax.Array | None = None, net: Net = ARTICLE
) -> jax.Array:
    """Every seed's `loss`, shape (seeds,); `y` is (samples, classes) or (samples, classes, seeds).

    With `weights` (see `row_weights`), each row's loss is weighted.
    """
    logits = population_hidden_and_logits(params, x, net)[1]
    if net.loss == "cross_entropy":
        per_row = -jnp.sum(per_seed(y) * jax.nn.log_softmax(logits, axis=1), axis=1, keepdims=True)
    else:
        per_row = (per_seed(y) - jax.nn.sigmoid(logits)) ** 2
    if weights is not None:
        per_row = row_weights(weights) * per_row
    total = jnp.sum(per_row, axis=(0, 1))
    if net.loss == "sse":
        return 0.5 * total
    rows = x.shape[0] if weights is None else jnp.sum(row_weights(weights), axis=(0, 1))
    return (0.5 * total if net.loss == "mse" else total) / rows


class Scores(NamedTuple):
    """A population's scores on some rows, one value per seed."""

    accuracy: jax.Array  # share of rows correct (`correct`)
    tied_rows: jax.Array  # rows whose largest output is shared (`tied`)
    collapsed: jax.Array  # ties on, or predicts one class for, every row (`collapsed`)
    predicted: jax.Array  # (seeds, rows) int8 (int16 past 127 classes): `predicted_class`, -1 where tied
    correct: jax.Array  # (seeds, rows) bool: each row correct under the tie rule (`correct`)


def population_scores(
    params: Params, x: jax.Array, y: jax.Array, ties: str = "strict", net: Net = ARTICLE
) -> Scores:
    """Every seed's `Scores` on (x, y); `y` is (samples, classes) or (samples, classes, seeds).

    The per-row fields cost nothing where they are not used: a program that keeps only the
    accuracy computes only it."""
    outputs = jnp.moveaxis(population_hidden_and_output(params, x, net)[1], -1, 0)
    y = y if y.ndim == 2 else jnp.moveaxis(y, -1, 0)
    right = correct(outputs, y, ties)
    return Scores(
        accuracy=jnp.mean(right, axis=-1, dtype=outputs.dtype),
        tied_rows=jnp.sum(tied(outputs), axis=-1, dtype=jnp.int32),
        collapsed=collapsed(outputs),
        predicted=predicted_class(outputs).astype(jnp.int8 if outputs.shape[-1] <= 127 else jnp.int16),
        correct=right,
    )


def population_accuracy(
    params: Params, x: jax.Array, y: jax.Array, ties: str = "strict", net: Net = ARTICLE
) -> jax.Array:
    """Every seed's `accuracy`, shape (seeds,)."""
    return population_scores(params, x, y, ties, net).accuracy
