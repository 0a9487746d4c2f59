"""The project's default training written by hand in plain JAX, for the benchmark to time
beside `python -m gophernet_jax` (no Hydra, no files, nothing imported from the package).

    python gophernet_jax/handwritten.py --seeds 1000 --epochs 5000
    python -m gophernet_jax.handwritten --seeds 1000 --epochs 5000  # imports the package too

Seed i starts from 27 numbers uniform on [0, 1) drawn with `fold_in(key(0), i)` and takes
full-batch gradient steps (learning rate 0.3 on the summed squared error); the seeds are
laid out last, trained in chunks of at most 500 with `lax.map`, the chunks shared out among
the local devices. It prints the mean test accuracy. XLA's settings come from XLA_FLAGS
alone: `python -m gophernet_jax.bench` runs it with the flags the package sets for itself.
"""

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" if (HERE / "data").is_dir() else HERE.parent / "data"  # wheel, or checkout


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32, ndmin=2)
    return rows[:, :4], rows[:, 4:]


def forward(p, x):
    """Outputs (samples, 3, seeds) of flat params p (27, seeds): wh, bh, wo, bo in that order."""
    seeds = p.shape[-1]
    hidden = jax.nn.sigmoid((x @ p[:12].reshape(4, 3 * seeds)).reshape(-1, 3, seeds) + p[12:15])
    w_out = p[15:24].reshape(3, 3, seeds)
    return jax.nn.sigmoid(sum(hidden[:, j, None, :] * w_out[j] for j in range(3)) + p[24:27])


def train_chunk(indices, x, y, x_test, y_test, epochs):
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(0), indices)
    p = jax.vmap(lambda k: jax.random.uniform(k, (27,)))(keys).T  # seeds last
    grad = jax.grad(lambda p: 0.5 * jnp.sum((y[:, :, None] - forward(p, x)) ** 2))
    p, _ = jax.lax.scan(lambda p, _: (p - 0.3 * grad(p), None), p, length=epochs)
    predicted = jnp.argmax(forward(p, x_test), axis=1)
    return jnp.mean(predicted == jnp.argmax(y_test, axis=1)[:, None], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=5000)
    args = parser.parse_args()
    start = time.perf_counter()
    (x, y), (x_test, y_test) = load(DATA / "train.csv"), load(DATA / "test.csv")
    devices = min(jax.local_device_count(), args.seeds)  # no device trains padding alone
    chunks = -(-args.seeds // (500 * devices)) * devices  # chunks of at most 500, as many per device
    width = -(-args.seeds // chunks)
    mesh = jax.make_mesh((devices,), ("seeds",), devices=jax.local_devices()[:devices])
    shard = jax.sharding.PartitionSpec("seeds")

    @jax.jit
    def train(indices, x, y, x_test, y_test):
        def per_device(indices, *data):
            return jax.lax.map(lambda i: train_chunk(i, *data, args.epochs), indices)

        spec = (shard,) + (jax.sharding.PartitionSpec(),) * 4
        return jax.shard_map(per_device, mesh=mesh, in_specs=spec, out_specs=shard)(
            indices, x, y, x_test, y_test
        )

    indices = jnp.arange(chunks * width, dtype=jnp.uint32).reshape(chunks, width)
    indices = jax.device_put(indices, jax.NamedSharding(mesh, shard))  # each device its chunks
    accuracy = np.asarray(train(indices, x, y, x_test, y_test)).reshape(-1)[: args.seeds]
    print(
        f"{args.seeds} seeds x {args.epochs} epochs on {devices} device(s): mean test accuracy "
        f"{accuracy.mean():.4f} ({time.perf_counter() - start:.2f} s after imports)"
    )


if __name__ == "__main__":
    main()
