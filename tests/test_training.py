import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from conftest import rel_err
from gophernet_jax import Sizes, forward, init_params, seed_keys, train, train_population
from gophernet_jax.runtime import CompileCounter
from gophernet_jax.training import article_direction, autodiff_direction

ARTICLE = Sizes(4, 3, 3)


def _sigmoid(v):
    with np.errstate(over="ignore"):  # exp(-v) = inf for very negative v gives 0, as in Go
        return 1.0 / (1.0 + np.exp(-v))


def reference_train(params, x, y, epochs, lr, slope):
    """A NumPy transliteration of REFERENCE.md's epoch, step for step."""
    wh, bh, wo, bo = (np.array(a, dtype=np.float64) for a in params[:4])
    for _ in range(epochs):
        hidden = _sigmoid(x @ wh + bh)
        out = _sigmoid(hidden @ wo + bo)
        d_out = (y - out) * slope(out)
        d_hidden = (d_out @ wo.T) * slope(hidden)  # the old wOut
        wo = wo + lr * (hidden.T @ d_out)
        bo = bo + lr * d_out.sum(axis=0)
        wh = wh + lr * (x.T @ d_hidden)
        bh = bh + lr * d_hidden.sum(axis=0)
    return wh, bh, wo, bo


def article_slope(a):  # sigmoidPrime applied to a sigmoid output
    return _sigmoid(a) * (1.0 - _sigmoid(a))


def exact_slope(a):  # the derivative, as before the 2018 commit
    return a * (1.0 - a)


@pytest.mark.parametrize("epochs", [1, 10])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_article_rule_matches_numpy_reference(padded_data, x64, epochs, seed):
    train_set, _ = padded_data
    p0 = init_params(jax.random.key(seed), ARTICLE, jnp.float64)
    got = train(p0, train_set.x, train_set.y, epochs=epochs, learning_rate=0.3, rule="article")
    want = reference_train(p0, train_set.x, train_set.y, epochs, 0.3, article_slope)
    assert all(a.dtype == jnp.float64 for a in jax.tree.leaves(got))
    assert (
        rel_err(np.concatenate([np.ravel(a) for a in got[:4]]), np.concatenate([np.ravel(a) for a in want]))
        < 1e-12
    )


# Seeds whose 5000-epoch run is not near a bifurcation: for keys 1, 6 and 7 a change of
# one unit in the last place grows to 1e-7..1e-1 by epoch 5000, in NumPy alone too.
@pytest.mark.parametrize("seed", [0, 2, 3, 4, 5])
def test_article_rule_after_5000_epochs_agrees_and_predicts_the_same(padded_data, x64, seed):
    train_set, test_set = padded_data
    p0 = init_params(jax.random.key(seed), ARTICLE, jnp.float64)
    got = train(p0, train_set.x, train_set.y, epochs=5000, learning_rate=0.3, rule="article")
    want = reference_train(p0, train_set.x, train_set.y, 5000, 0.3, article_slope)
    for a, b in zip(got, want):
        assert_allclose(a, b, rtol=1e-8)
    want_out = _sigmoid(_sigmoid(test_set.x @ want[0] + want[1]) @ want[2] + want[3])
    assert_array_equal(np.argmax(forward(got, test_set.x), axis=1), np.argmax(want_out, axis=1))


def test_autodiff_rule_is_exact_backprop(article_data, x64):
    """With the slope a(1−a) the article's update is −lr·∇loss: autodiff must equal it."""
    train_set, _ = article_data
    p0 = init_params(jax.random.key(4), ARTICLE, jnp.float64)
    got = train(p0, train_set.x, train_set.y, epochs=10, learning_rate=0.3, rule="autodiff")
    want = reference_train(p0, train_set.x, train_set.y, 10, 0.3, exact_slope)
    for a, b in zip(got, want):
        assert_allclose(a, b, rtol=1e-11)


def test_the_two_rules_differ(article_data, x64):
    train_set, _ = article_data
    p0 = init_params(jax.random.key(4), ARTICLE, jnp.float64)
    a = article_direction(p0, jnp.asarray(train_set.x), jnp.asarray(train_set.y))
    b = autodiff_direction(p0, jnp.asarray(train_set.x), jnp.asarray(train_set.y))
    assert rel_err(a.w_out, b.w_out) > 1e-3


def test_train_computes_in_float32_by_default(article_data):
    train_set, _ = article_data
    p = train(init_params(jax.random.key(0), ARTICLE), train_set.x, train_set.y, epochs=3, learning_rate=0.3)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(p))


def _population(data, count, base=0, **kw):
    (tr, te) = data
    kw = {"epochs": 30, "learning_rate": 0.3, **kw}
    return train_population(base, count, ARTICLE, (tr.x, tr.y), (te.x, te.y), **kw)


@pytest.mark.parametrize("rule", ["autodiff", "article"])
def test_population_equals_a_loop_of_train(article_data, x64, rule):
    # The population runs seeds last and sums in another order than `train`: they agree
    # to rounding after one epoch, and within 1e-10 after ten (autodiff at lr 0.3 is
    # chaotic: by epoch 30 one seed in five drifts to 3e-8).
    train_set, _ = article_data
    for epochs, rtol in [(1, 1e-13), (10, 1e-10)]:
        pop = _population(article_data, 5, base=11, rule=rule, dtype="float64", chunk_size=2, epochs=epochs)
        for i, key in enumerate(seed_keys(11, 5)):
            p0 = init_params(key, ARTICLE, jnp.float64)
            one = train(p0, train_set.x, train_set.y, epochs=epochs, learning_rate=0.3, rule=rule)
            for a, b in zip(jax.tree.map(lambda t, i=i: t[i], pop.params), one):
                assert_allclose(a, b, rtol=rtol)


def test_seed_keys_are_fold_in_and_prefix_stable():
    keys = seed_keys(5, 4)
    for i in range(4):
        assert_array_equal(
            jax.random.key_data(keys[i]), jax.random.key_data(jax.random.fold_in(jax.random.key(5), i))
        )
    assert_array_equal(jax.random.key_data(seed_keys(5, 40)[:4]), jax.random.key_data(keys))


def test_small_population_is_a_prefix_of_a_larger_one(article_data, x64):
    # Initial weights are bitwise the same; training agrees to rounding, since a larger
    # batch may sum its matmuls in another order (chaotic seeds amplify that later).
    small = _population(article_data, 10, base=3, dtype="float64", epochs=10)
    large = _population(article_data, 100, base=3, dtype="float64", epochs=10)
    for u, v in zip(jax.tree.leaves(small), jax.tree.leaves(large)):
        assert_allclose(u, v[:10], rtol=1e-9)
    assert not np.allclose(large.final_loss[10:20], small.final_loss)


def test_initial_weights_of_a_prefix_are_bitwise_equal():
    init = jax.vmap(init_params, in_axes=(0, None))
    small, large = init(seed_keys(3, 10), ARTICLE), init(seed_keys(3, 1000), ARTICLE)
    for u, v in zip(small, large):
        assert_array_equal(u, v[:10])


def test_different_base_seeds_give_different_populations(article_data):
    a, b = _population(article_data, 8, base=0), _population(article_data, 8, base=1)
    assert not np.allclose(a.final_loss, b.final_loss)


def test_learning_rate_and_base_seed_do_not_recompile(article_data):
    first = _population(article_data, 16, learning_rate=0.1, epochs=12)
    with CompileCounter() as counter:
        for lr, base in [(0.3, 0), (1.0, 0), (3.0, 9)]:
            other = _population(article_data, 16, base=base, learning_rate=lr, epochs=12)
            jax.block_until_ready(other)
    assert counter.count == 0
    assert not np.allclose(first.final_loss, other.final_loss)
    with CompileCounter() as counter:  # the counter can see a compilation: a shape change
        jax.block_until_ready(_population(article_data, 16, epochs=13))
    assert counter.count + counter.cache_hits >= 1  # compiled, or loaded from the cache


def test_divergence_is_flagged_per_seed_and_does_not_stop_the_run(article_data):
    # 1e38 overflows float32 weights to ±inf; 0·inf on the way makes NaN losses.
    pop = _population(article_data, 4, learning_rate=1e38, epochs=20)
    assert pop.diverged.shape == (4,) and bool(np.all(pop.diverged))
    calm = _population(article_data, 4, learning_rate=0.3, epochs=20)
    assert not bool(np.any(calm.diverged)) and np.all(np.isfinite(calm.final_loss))


def test_other_optax_optimizers_train(article_data):
    with jax.numpy_dtype_promotion("standard"):  # optax's adam mixes int counts and floats
        _check_adam_trains(article_data)


def _check_adam_trains(article_data):
    pop = _population(article_data, 4, optimizer="adam", learning_rate=0.05, epochs=200)
    sgd = _population(article_data, 4, optimizer="sgd", learning_rate=0.05, epochs=200)
    assert not np.allclose(pop.final_loss, sgd.final_loss)
    assert np.all(pop.final_loss < _population(article_data, 4, epochs=1, learning_rate=1e-9).final_loss)


def test_float64_population_needs_x64(article_data):
    with pytest.raises(ValueError, match="jax_enable_x64"):
        _population(article_data, 2, dtype="float64")


@pytest.mark.parametrize(
    "hidden, activation, loss_name",
    [((12,), "tanh", "cross_entropy"), ((9, 20), "relu", "mse"), ((20,), "gelu", "sse")],
)
def test_a_wide_or_deep_population_trains_each_seed_as_the_per_network_oracle(
    article_data, x64, hidden, activation, loss_name
):
    """Every product form (unrolled, fused multiply-reduce, batched) against one network's
    `jax.grad` of `loss`, with Adam and a schedule. (optax's Adam raises a float to an int
    count: standard promotion here.)"""
    with jax.numpy_dtype_promotion("standard"):
        _check_against_oracle(article_data, hidden, activation, loss_name)


def _check_against_oracle(article_data, hidden, activation, loss_name):
    from gophernet_jax.model import Net
    from gophernet_jax.training import autodiff_direction, make_optimizer

    (train_set, test_set), net = article_data, Net(activation, loss_name)
    sizes = Sizes(4, hidden if len(hidden) > 1 else hidden[0], 3)
    kw = dict(epochs=4, learning_rate=0.05, optimizer="adam", dtype="float64", net=net, init="glorot_uniform")
    pop = train_population(0, 3, sizes, train_set[:2], test_set[:2], schedule="cosine", **kw)
    x, y = jnp.asarray(train_set.x), jnp.asarray(train_set.y)
    opt = make_optimizer("adam", 0.05, schedule="cosine", steps=4)

    @jax.jit  # one network's step, compiled once (op by op, each of its operations compiled alone)
    def step(p, state):
        updates, state = opt.update(autodiff_direction(p, x, y, None, net), state, p)
        return optax.apply_updates(p, updates), state

    for i in range(3):
        p = init_params(seed_keys(0, 3)[i], sizes, jnp.float64, "glorot_uniform")
        state = opt.init(p)
        for _ in range(4):
            p, state = step(p, state)
        for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(pop.params)):
            assert_allclose(b[i], a, rtol=1e-9, atol=1e-12)


def test_the_readmes_family_network_trains_through_the_public_api(article_data):
    """README, The API: `Net` from the package, a [32, 32] tanh/softmax net, Adam 0.01."""
    from gophernet_jax import Net, accuracy, loss

    train_set, test_set = article_data
    net = Net("tanh", "cross_entropy")
    params = init_params(jax.random.key(0), Sizes(4, (32, 32), 3), init="glorot_uniform")
    start = float(loss(params, train_set.x, train_set.y, net))
    with jax.numpy_dtype_promotion("standard"):  # optax's Adam: a float to an int count
        params = train(
            params, train_set.x, train_set.y, epochs=200, learning_rate=0.01, optimizer="adam", net=net
        )
    assert float(loss(params, train_set.x, train_set.y, net)) < start / 10
    assert float(accuracy(params, test_set.x, test_set.y, net=net)) >= 0.9
    # The same weights read by the article's sigmoid net score otherwise: `net` is used.
    assert float(accuracy(params, train_set.x, train_set.y)) != float(
        accuracy(params, train_set.x, train_set.y, net=net)
    )


@pytest.mark.parametrize("hidden", [3, (24, 20)])
def test_a_softmax_network_seed_does_not_depend_on_its_chunk(article_data, hidden):
    # Chunks are whole blocks of 16 seeds, two at least (`training.chunk_layout`). Natively
    # on AVX-512, this network's gradients in chunks of 2, 5 or 8 seeds (and at 3 units of 17
    # or 100) differed from the same seeds' in a chunk of 128, and so did its final losses in
    # chunks of one block (16) from those in chunks of 64 (until 2026-12-07, when a seed alone
    # trained in a chunk of 16).
    from gophernet_jax.model import Net

    (train_set, test_set), net = article_data, Net("tanh", "cross_entropy")
    kw = dict(epochs=20, learning_rate=0.01, optimizer="adam", net=net, init="glorot_uniform")
    args = (Sizes(4, hidden, 3), train_set[:2], test_set[:2])
    with jax.numpy_dtype_promotion("standard"):  # optax's Adam: a float to an int count
        _assert_seeds_agree_in_any_chunk(23, args, kw)


def _assert_seeds_agree_in_any_chunk(count, args, kw):
    """The first `count` of 100 seeds (chunks of 64 on two devices), `count` seeds in chunks
    of two blocks (32, `training.LEAST_CHUNK`), and seeds 0 to 3 each alone (one chunk of 32
    on one device): bit for bit."""
    wide = train_population(0, 100, *args, **kw)
    narrow = train_population(0, count, *args, chunk_size=32, **kw)
    assert_array_equal(np.asarray(wide.final_loss)[:count], np.asarray(narrow.final_loss))
    for seed in range(4):
        alone = train_population(0, 1, *args, start=seed, **kw)
        assert_array_equal(np.asarray(wide.final_loss)[seed : seed + 1], np.asarray(alone.final_loss))


def test_a_seed_on_a_digits_shaped_table_does_not_depend_on_its_chunk():
    # 64 inputs onto 3 units over 1150 rows: one product as wide as the chunk gave 9 of
    # these 40 seeds other final losses in chunks of 16 than in chunks of 32 (natively on
    # AVX-512, two host devices). Products with the shared rows are made per block of 16 seeds
    # (`model.shared_product`), so seeds agree in any chunk and alone.
    from gophernet_jax.model import Net

    rng = np.random.default_rng(3)
    x = rng.random((1437, 64)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 1437)]
    kw = dict(epochs=30, learning_rate=1.0, net=Net("tanh", "cross_entropy"), init="glorot_uniform")
    args = (Sizes(64, 3, 10), (x[:1150], y[:1150]), (x[1150:], y[1150:]))
    _assert_seeds_agree_in_any_chunk(40, args, kw)


def test_a_seed_of_a_wide_network_does_not_depend_on_its_chunk():
    # 13 inputs onto 64 tanh units and 3 outputs, Adam (wine's shape at model.hidden=64): in
    # chunks of one block, whose products with the rows were padded to two, 18 of 40 such
    # seeds ended 30 epochs with other weights than in chunks of 32 or more (natively on
    # AVX-512): the padding kept XLA from fusing Adam's moments into the copy of the weights'
    # gradient out of its blocks. A chunk holds two blocks at least (`training.chunk_layout`).
    from gophernet_jax.model import Net

    rng = np.random.default_rng(5)
    x = rng.random((178, 13)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 178)]
    kw = dict(epochs=30, learning_rate=0.01, optimizer="adam", net=Net("tanh", "cross_entropy"))
    args = (Sizes(13, 64, 3), (x[:142], y[:142]), (x[142:], y[142:]))
    with jax.numpy_dtype_promotion("standard"):  # optax's Adam: a float to an int count
        _assert_seeds_agree_in_any_chunk(40, args, kw | {"init": "glorot_uniform"})
