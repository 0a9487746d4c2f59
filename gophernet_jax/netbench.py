"""Benchmark of wider networks: the population trainer against a plain `jit(vmap(train_one))`
written here, on the same rows, with the same network (Glorot-uniform weights, tanh, softmax
cross-entropy, Adam at 0.01, full batch), in the same run; GFLOP/s beside each rate, and the
machine's measured float32 GEMM rate for scale.

    python -m gophernet_jax.bench --only networks [--net-seeds 200 --net-epochs 100 --net-repeats 3]

Each measurement runs in a fresh process: the project's with its own XLA settings (a host
device per core), the plain one with XLA's defaults but YNN fusion off, as a user's script
would run. After a first run (warm), each times `repeats` runs and keeps the fastest: on a
machine shared with other work a single run moved a ratio by up to 2x from one benchmark to
the next.
"""

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

#: (table, its label column, hidden widths) of the cases the networks issue names.
CASES = [("digits", "digit", (32,)), ("wine", "class", (64,)), ("wine", "class", (64, 64))]


def case_data(table: str, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Split 0 of the shipped table, min-max scaled, as the project makes it: (x, y) float32."""
    from gophernet_jax.config import DATA_DIR
    from gophernet_jax.splits import load_table, make_split
    from gophernet_jax.training import draw_key

    t = load_table(DATA_DIR / f"{table}.csv", label)
    # Noise 0, as the project's own split 0 (`training.first_split`): the table's values, unchanged.
    split = make_split(t, draw_key("split", 0), draw_key("noise", 0), test_fraction=0.2, dtype="float32")
    return np.asarray(split.x_train), np.asarray(split.y_train)


def flops_per_seed_epoch(rows: int, widths: tuple[int, ...]) -> float:
    """Forward and backward matrix products of one full-batch epoch: 3 × 2 × rows × Σ a·b."""
    return 6.0 * rows * sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def plain(x, y, hidden, seeds, epochs, repeats: int = 1) -> dict:
    """The obvious code: one network's training, vmapped over the seeds' keys and jitted."""
    widths = (x.shape[1], *hidden, y.shape[1])
    opt = optax.adam(0.01)

    def init(key):
        keys = jax.random.split(key, len(widths) - 1)
        glorot = jax.nn.initializers.glorot_uniform()
        return [(glorot(k, (a, b)), jnp.zeros(b)) for k, a, b in zip(keys, widths[:-1], widths[1:])]

    def loss(p, x, y):
        h = x
        for w, b in p[:-1]:
            h = jnp.tanh(h @ w + b)
        return optax.softmax_cross_entropy(h @ p[-1][0] + p[-1][1], y).mean()

    def train_one(key):
        p = init(key)

        def epoch(carry, _):
            p, state = carry
            updates, state = opt.update(jax.grad(loss)(p, x, y), state, p)
            return (optax.apply_updates(p, updates), state), None

        (p, _), _ = jax.lax.scan(epoch, (p, opt.init(p)), length=epochs)
        return loss(p, x, y)

    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(seeds))
    return _timed(jax.jit(jax.vmap(train_one)), repeats, keys)


def project(x, y, hidden, seeds, epochs, repeats: int = 1) -> dict:
    """The population trainer (`training.run_population`) on the same network, in the chunks
    the command line's `train.chunk_size=auto` picks (`training.chunk_choice`)."""
    from gophernet_jax.model import Net, Sizes
    from gophernet_jax.training import (
        Numbers,
        chunk_choice,
        population_layout,
        population_spec,
        run_population,
    )

    sizes = Sizes(x.shape[1], hidden if len(hidden) > 1 else hidden[0], y.shape[1])
    net = Net("tanh", "cross_entropy")
    chunk = chunk_choice(seeds, sizes, 2 * len(x)).size  # scored on the training rows twice
    spec = population_spec(
        seeds, sizes, epochs=epochs, optimizer="adam", net=net, init="glorot_uniform", chunk_size=chunk
    )
    indices = population_layout(spec, ("init",))
    sources = {k: np.uint32(0) for k in ("split", "noise", "order")} | {"scale": np.float32(0.0)}
    numbers = Numbers.of(0.01, None, 0.1, "float32")
    program = jax.jit(lambda *a: run_population(*a, spec).final_loss)
    return _timed(program, repeats, np.uint32(0), numbers, (x, y, None, None, x, y), indices, sources)


def _timed(program, repeats: int, *args) -> dict:
    """Compile time, and the fastest of `repeats` runs after a warm one (`run_s`; `runs_s`: each)."""
    start = time.perf_counter()
    compiled = program.lower(*args).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(*args))  # warm
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - start)
    return {"compile_s": compile_s, "run_s": min(runs), "runs_s": runs, "loss": float(np.mean(out))}


def gemm_gflops(n: int = 2048) -> float:
    """The float32 rate of one n×n×n matrix product on this machine, best of 5."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    product = jax.jit(lambda a: a @ a)
    jax.block_until_ready(product(a))
    best = min(_seconds(product, a) for _ in range(5))
    return 2 * n**3 / best / 1e9


def _seconds(f, a) -> float:
    start = time.perf_counter()
    jax.block_until_ready(f(a))
    return time.perf_counter() - start


def worker(kind: str, case: int, seeds: int, epochs: int, repeats: int = 1) -> None:
    """One measurement in this process; prints a JSON line."""
    if kind == "gemm":
        print(json.dumps({"gemm_gflops": gemm_gflops()}))
        return
    table, label, hidden = CASES[case]
    x, y = case_data(table, label)
    row = (plain if kind == "plain" else project)(x, y, hidden, seeds, epochs, repeats)
    print(json.dumps(row | {"rows": len(x), "widths": [x.shape[1], *hidden, y.shape[1]]}))


if __name__ == "__main__":
    worker(sys.argv[1], *map(int, sys.argv[2:6]))
