import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from numpy.testing import assert_allclose, assert_array_equal

import conftest
from gophernet_jax import Params, Sizes, accuracy, forward, init_params, loss
from gophernet_jax.model import collapsed, correct, param_count, predicted_class, tied


def test_init_params_shapes_range_and_fill_order():
    key = jax.random.key(3)
    p = init_params(key, Sizes(4, 5, 3))
    assert [a.shape for a in jax.tree.leaves(p)] == [(4, 5), (5,), (5, 3), (3,)]
    flat = np.concatenate([np.ravel(a) for a in jax.tree.leaves(p)])
    assert flat.size == param_count(Sizes(4, 5, 3)) == 43
    assert flat.min() >= 0.0 and flat.max() < 1.0
    # Filled in the article's order from one draw: wHidden row-major, bHidden, wOut, bOut.
    assert_array_equal(flat, np.asarray(jax.random.uniform(key, (43,))))


def test_init_params_dtype_follows_argument(x64):
    assert init_params(jax.random.key(0), Sizes(4, 3, 3), jnp.float64).w_out.dtype == jnp.float64


def test_forward_matches_hand_computation():
    p = init_params(jax.random.key(1), Sizes(2, 3, 2))
    x = jnp.array([[0.1, 0.9], [0.5, 0.2]])
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    hidden = sig(np.asarray(x) @ np.asarray(p.w_hidden) + np.asarray(p.b_hidden))
    expected = sig(hidden @ np.asarray(p.w_out) + np.asarray(p.b_out))
    assert_allclose(forward(p, x), expected, rtol=1e-6)


def test_loss_is_half_summed_squared_error_not_mean():
    p = init_params(jax.random.key(2), Sizes(4, 3, 3))
    x = jax.random.uniform(jax.random.key(5), (7, 4))
    y = jax.nn.one_hot(jnp.arange(7) % 3, 3)
    expected = 0.5 * np.sum((np.asarray(y) - np.asarray(forward(p, x))) ** 2)
    assert_allclose(loss(p, x, y), expected, rtol=1e-6)


def test_check_grads_on_loss(x64):
    p = init_params(jax.random.key(0), Sizes(4, 3, 3), jnp.float64)
    x = jax.random.uniform(jax.random.key(1), (9, 4), dtype=jnp.float64)
    y = jax.nn.one_hot(jnp.arange(9) % 3, 3, dtype=jnp.float64)
    check_grads(jax.jit(lambda q: loss(q, x, y)), (p,), order=2, modes=("fwd", "rev"))


def test_a_tie_for_the_maximum_is_wrong_by_default_and_right_by_the_articles_rule():
    outputs = jnp.array([[0.2, 0.7, 0.1], [0.5, 0.5, 0.1], [0.9, 0.1, 0.1], [0.1, 0.9, 0.3], [0.0, 0.0, 0.0]])
    y = jnp.array([[0, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1]], dtype=jnp.float32)
    # The zero label row (the reference loader's padding row) is class 0 under both rules.
    assert_array_equal(correct(outputs, y), [True, False, True, False, False])
    assert_array_equal(correct(outputs, y, "article"), [True, True, True, False, True])
    assert_array_equal(tied(outputs), [False, True, False, False, True])
    assert_array_equal(predicted_class(outputs), [1, -1, 0, 1, -1])
    with pytest.raises(ValueError, match="tie rule"):
        correct(outputs, y, "lenient")


def test_a_row_with_a_non_finite_output_has_no_class():
    # A diverged network's NaN: argmax said class 0, beside "not correct" on a row of class 0.
    outputs = jnp.array([[jnp.nan, 0.1, 0.2], [0.3, jnp.nan, 0.1], [jnp.nan] * 3, [0.1, 0.9, 0.0]])
    assert_array_equal(predicted_class(outputs), [-1, -1, -1, 1])
    assert_array_equal(correct(outputs, jnp.eye(3)[jnp.array([0, 1, 0, 1])]), [False, False, False, True])
    assert collapsed(outputs[:3])  # no class on any row


def test_a_dead_network_scores_zero_and_counts_as_collapsed():
    # Every output underflowed to 0: the article's rule calls each row correct.
    dead = jnp.zeros((6, 3))
    y = jax.nn.one_hot(jnp.arange(6) % 3, 3)
    assert float(jnp.mean(correct(dead, y))) == 0.0
    assert float(jnp.mean(correct(dead, y, "article"))) == 1.0
    assert bool(collapsed(dead))
    one_class = jnp.tile(jnp.array([0.1, 0.8, 0.3]), (6, 1))
    assert bool(collapsed(one_class))
    mixed = jnp.eye(3)[jnp.arange(6) % 3]
    assert not bool(collapsed(mixed))
    nan_rows = jnp.full((6, 3), jnp.nan)
    assert float(jnp.mean(correct(nan_rows, y))) == 0.0


def test_accuracy_is_share_of_correct_rows(article_data):
    train_set, test_set = article_data
    p = init_params(jax.random.key(0), Sizes(4, 3, 3))
    predicted = np.argmax(np.asarray(forward(p, test_set.x)), axis=1)
    expected = np.mean(predicted == np.argmax(test_set.y, axis=1))
    assert float(accuracy(p, test_set.x, test_set.y)) == pytest.approx(expected)


def test_params_is_a_pytree_with_named_fields():
    p = init_params(jax.random.key(0), Sizes(4, 3, 3))
    assert isinstance(p, Params) and p._fields[:4] == ("w_hidden", "b_hidden", "w_out", "b_out")
    assert p.w_deeper == p.b_deeper == ()  # one hidden layer: the pytree is the article's four arrays
    assert len(jax.tree.leaves(p)) == 4
    doubled = jax.tree.map(lambda a: 2 * a, p)
    assert_allclose(doubled.b_out, 2 * p.b_out)


def test_a_deeper_network_draws_every_layer_and_each_init_scheme():
    sizes = Sizes(5, (7, 6), 3)
    p = init_params(jax.random.key(0), sizes)
    assert [a.shape for a in jax.tree.leaves(p)] == [(5, 7), (7,), (6, 3), (3,), (7, 6), (6,)]
    assert sum(a.size for a in jax.tree.leaves(p)) == param_count(sizes)
    glorot = init_params(jax.random.key(0), sizes, init="glorot_uniform")
    limit = np.sqrt(6 / (7 + 6))
    assert np.all(np.abs(glorot.w_deeper[0]) <= limit) and float(jnp.max(jnp.abs(glorot.b_out))) == 0.0
    assert float(jnp.std(glorot.w_hidden)) > 0.1
    with pytest.raises(ValueError, match="unknown init"):
        init_params(jax.random.key(0), sizes, init="zeros")


def test_cross_entropy_outputs_are_a_softmax_and_the_loss_its_mean():
    from gophernet_jax.model import Net

    net = Net("tanh", "cross_entropy")
    p = init_params(jax.random.key(1), Sizes(4, (5, 5), 3), init="glorot_uniform")
    x = jax.random.uniform(jax.random.key(2), (6, 4))
    y = jax.nn.one_hot(jnp.arange(6) % 3, 3)
    out = forward(p, x, net)
    assert_allclose(np.sum(np.asarray(out), axis=1), 1.0, rtol=1e-6)
    assert_allclose(float(loss(p, x, y, net)), float(-jnp.mean(jnp.sum(y * jnp.log(out), axis=1))), rtol=1e-5)


@pytest.mark.parametrize("rows, units, features", [(120, 3, 4), (75, 16, 8), (9, 5, 1)])
def test_a_product_over_few_features_is_the_blocked_products_arithmetic(rows, units, features):
    """`few_features_product` (a multiply-add per feature, no matrix product) computes what
    the blocked matrix product computes: bit for bit where oneDNN's kernels are the committed
    studies' (AVX-512), within float32 rounding elsewhere; its gradient in the weights is
    the blocked product's own transpose, bit for bit on any machine, since it is the same
    program."""
    from gophernet_jax.model import _blocked_product, few_features_product, shared_product

    x = jax.random.uniform(jax.random.key(features), (rows, features), minval=-2.0, maxval=2.0)
    w = jax.random.normal(jax.random.key(rows), (features, units, 40))
    ct = jax.random.normal(jax.random.key(units), (rows, units, 40))
    fast = np.asarray(jax.jit(shared_product)(x, w))
    blocked = np.asarray(jax.jit(lambda x, w: _blocked_product(x, w, 1))(x, w))
    if conftest.committed_kernels():
        assert_array_equal(fast, blocked)
    assert_allclose(fast, blocked, rtol=1e-6, atol=1e-6)
    # The weights' gradient for one cotangent: the blocked product's transpose, exactly.
    pull = jax.jit(lambda x, w, ct: jax.vjp(lambda w: few_features_product(x, w), w)[1](ct)[0])
    pull_blocked = jax.jit(lambda x, w, ct: jax.vjp(lambda w: _blocked_product(x, w, 1), w)[1](ct)[0])
    assert_array_equal(pull(x, w, ct), pull_blocked(x, w, ct))


def test_the_article_rules_hidden_gradient_is_the_product_of_a_delta_made_on_its_own(article_data):
    """The `article` rule's [x 1]ᵀ·δ (`shared_product(..., apart=True)`): XLA cannot fuse δ's
    arithmetic into the copy into blocks, so δ is what a program of its own computes, and the
    hidden layer's direction the blocked product of that δ, bit for bit. Fused into the copy,
    δ rounded otherwise (on a 2-core AVX-512 AMD EPYC 67 of these 768 weights' entries
    differed) and the rule ran at two thirds of the rate (`model._apart`)."""
    from gophernet_jax.model import per_seed, population_hidden_and_output, seeds_last, shared_product
    from gophernet_jax.training import _unit_article_slope, initial_params, population_article_direction

    train_set, _ = article_data
    x, y = jnp.asarray(train_set.x), jnp.asarray(train_set.y)
    params = seeds_last(initial_params(0, 64, Sizes(4, 3, 3)))

    def delta(params, x, y):
        hidden, out = population_hidden_and_output(params, x)
        d_out = (per_seed(y) - out) * _unit_article_slope(out)
        back = jnp.stack([jnp.sum(d_out * params.w_out[j], axis=1) for j in range(3)], axis=1)
        return back * _unit_article_slope(hidden)

    made = jax.jit(delta)(params, x, y)  # its own program
    x1 = jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)
    both = jax.jit(lambda x1, d: shared_product(x1, d, 0))(x1, made)
    direction = jax.jit(population_article_direction)(params, x, y)
    assert_array_equal(direction.w_hidden, -both[:-1])
    assert_array_equal(direction.b_hidden, -both[-1])


@pytest.mark.parametrize("rows, inputs, outputs", [(142, 64, 3), (50, 32, 10), (7, 9, 16)])
def test_a_product_onto_few_outputs_has_the_batched_products_gradients(rows, inputs, outputs):
    """`per_seed_product` onto at most FEW_OUTPUTS outputs: the batched product's values and
    gradient in the weights, bit for bit (the same program), and in the inputs its gradient
    as multiply-adds over the outputs, within float32 rounding of the batched product's."""
    from gophernet_jax.model import FEW_OUTPUTS, _batched_product, per_seed_product

    assert outputs <= FEW_OUTPUTS
    h = jax.random.uniform(jax.random.key(inputs), (rows, inputs, 40), minval=-1.0, maxval=1.0)
    w = jax.random.normal(jax.random.key(rows), (inputs, outputs, 40))
    ct = jax.random.normal(jax.random.key(outputs), (rows, outputs, 40))

    def values_and_pulls(product) -> list[np.ndarray]:
        def both(h, w, ct):
            out, pull = jax.vjp(product, h, w)
            return (out, *pull(ct))

        return [np.asarray(a) for a in jax.jit(both)(h, w, ct)]

    pulls = {"few": values_and_pulls(per_seed_product), "batched": values_and_pulls(_batched_product)}
    assert_array_equal(pulls["few"][0], pulls["batched"][0])  # values
    assert_array_equal(pulls["few"][2], pulls["batched"][2])  # gradient in w
    assert_allclose(pulls["few"][1], pulls["batched"][1], rtol=1e-5, atol=1e-5)  # gradient in h
    # and it is Σ_k ct[n, k, s] · w[j, k, s], to float32 rounding
    assert_allclose(pulls["few"][1], np.einsum("nks,jks->njs", ct, w), rtol=1e-5, atol=1e-5)


def test_a_product_onto_few_outputs_has_first_and_second_derivatives(x64):
    """Forward and reverse mode, to second order, in both arguments (check_grads, float64)."""
    from gophernet_jax.model import per_seed_product

    h = jax.random.uniform(jax.random.key(0), (6, 9, 4), jnp.float64)
    w = jax.random.normal(jax.random.key(1), (9, 2, 4), jnp.float64)
    f = jax.jit(lambda h, w: jnp.sin(per_seed_product(h, w)))
    check_grads(f, (h, w), order=2, modes=("fwd", "rev"))


def test_a_product_over_few_features_has_first_and_second_derivatives(x64):
    """Forward and reverse mode, to second order, in both arguments (check_grads, float64)."""
    from gophernet_jax.model import few_features_product

    x = jax.random.uniform(jax.random.key(0), (6, 3), jnp.float64)
    w = jax.random.normal(jax.random.key(1), (3, 2, 4), jnp.float64)
    # jitted: each derivative is one program (op by op, over a hundred small ones).
    f = jax.jit(lambda x, w: jnp.sin(few_features_product(x, w)))
    check_grads(f, (x, w), order=2, modes=("fwd", "rev"))
