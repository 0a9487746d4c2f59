"""Benchmark: seed-epochs per second, compile time and memory of the population trainer,
beside a NumPy baseline (all seeds batched in one array) run in the same process.

    python -m gophernet_jax.bench                       # S = 1, 100, 1000, 10000 at 5000 epochs
    python -m gophernet_jax.bench --seeds 1000 --epochs 500 --out bench.csv

One seed-epoch is one full-batch step of one network on the 120 training rows. It first
times `import gophernet_jax.app` (what the CLI imports) in a fresh process.
"""

import argparse
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from gophernet_jax import runtime
from gophernet_jax.config import DATA_DIR
from gophernet_jax.dataset import load_split
from gophernet_jax.model import Sizes
from gophernet_jax.training import _train_population, chunking


def numpy_train(w_hidden, b_hidden, w_out, b_out, x, y, epochs, lr, rule):
    """The reference step for all seeds at once in NumPy (leading seed axis, einsum)."""
    sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    slope = (lambda a: sigmoid(a) * (1 - sigmoid(a))) if rule == "article" else (lambda a: a * (1 - a))
    for _ in range(epochs):
        hidden = sigmoid(np.einsum("nf,sfh->snh", x, w_hidden) + b_hidden[:, None, :])
        out = sigmoid(np.einsum("snh,shc->snc", hidden, w_out) + b_out[:, None, :])
        d_out = (y - out) * slope(out)
        d_hidden = np.einsum("snc,shc->snh", d_out, w_out) * slope(hidden)
        w_out = w_out + lr * np.einsum("snh,snc->shc", hidden, d_out)
        b_out = b_out + lr * d_out.sum(axis=1)
        w_hidden = w_hidden + lr * np.einsum("nf,snh->sfh", x, d_hidden)
        b_hidden = b_hidden + lr * d_hidden.sum(axis=1)
    return w_hidden, b_hidden, w_out, b_out


def time_numpy(seeds: int, epochs: int, x, y, rule: str) -> float:
    """NumPy seed-epochs per second, timed on a short run (the rate does not depend on epochs)."""
    rng = np.random.default_rng(0)
    params = [rng.random(s, dtype=np.float32) for s in [(seeds, 4, 3), (seeds, 3), (seeds, 3, 3), (seeds, 3)]]
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    start = time.perf_counter()
    with np.errstate(over="ignore"):  # exp(-v) = inf gives sigmoid 0, as in Go
        numpy_train(*params, x32, y32, epochs, np.float32(0.3), rule)
    return seeds * epochs / (time.perf_counter() - start)


def time_jax(seeds: int, epochs: int, data, rule: str, chunk_size: int) -> dict:
    """Compile time, run time and XLA's memory figures of one population program."""
    static = dict(count=seeds, sizes=Sizes(4, 3, 3), dtype="float32", epochs=epochs, rule=rule)
    static |= dict(optimizer="sgd", chunk_size=chunk_size, record_every=0, progress=False)
    static["devices"] = jax.local_device_count()
    args = (jnp.asarray(0, jnp.uint32), jnp.asarray(0.3, jnp.float32), data)
    start = time.perf_counter()
    compiled = _train_population.lower(*args, **static).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    program_bytes = sum(
        getattr(memory, f, 0) or 0
        for f in ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes")
    )
    return {"compile_s": compile_seconds, "run_s": seconds, "program_mb": program_bytes / 2**20}


def import_seconds() -> tuple[float, float]:
    """(seconds to `import gophernet_jax.app`, seconds of the whole fresh process) in a new
    interpreter: the start-up cost of the CLI before any compilation."""
    code = "import time; t = time.perf_counter(); import gophernet_jax.app; print(time.perf_counter() - t)"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1]), time.perf_counter() - start


def reset_peak_rss() -> None:
    """Starts a new peak for `peak_rss_mb` (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # elsewhere the figure stays the process's peak so far


def peak_rss_mb() -> float:
    """Peak resident memory since `reset_peak_rss` (or since the process started)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gophernet_jax.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 100, 1000, 10000])
    parser.add_argument("--epochs", type=int, default=5000)
    parser.add_argument(
        "--rules", nargs="+", default=["autodiff", "article"], choices=["autodiff", "article"]
    )
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--numpy-epochs", type=int, default=100, help="epochs of the NumPy timing run")
    parser.add_argument(
        "--numpy-max-seeds", type=int, default=1000, help="NumPy times at most this many seeds"
    )
    parser.add_argument("--ynn-fusion", action="store_true", help="leave XLA's YNN fusion on")
    parser.add_argument("--out", type=Path, default=Path("bench.csv"))
    args = parser.parse_args(argv)
    if min(args.seeds) < 1 or args.epochs < 1:
        parser.error("--seeds and --epochs must be >= 1")
    args.out.parent.mkdir(parents=True, exist_ok=True)  # before the measurements, not after them

    imported, process = import_seconds()
    print(
        f"import gophernet_jax.app: {imported:.2f} s (fresh interpreter, {process:.2f} s in all)", flush=True
    )
    start = time.perf_counter()
    runtime.configure(args.ynn_fusion, None)
    train_set, test_set = load_split(DATA_DIR / "train.csv", DATA_DIR / "test.csv")
    data = tuple(jnp.asarray(a, jnp.float32) for a in (train_set.x, train_set.y, test_set.x, test_set.y))
    jax.block_until_ready(data)
    ready = time.perf_counter() - start
    device = f"{jax.devices()[0].device_kind} x{jax.local_device_count()}, {platform.machine()}"
    print(f"jax {jax.__version__} on {device}; data on the device in {ready:.2f} s")
    rows = []
    for rule in args.rules:
        for seeds in args.seeds:
            row = {
                "rule": rule,
                "seeds": seeds,
                "epochs": args.epochs,
                "chunks": chunking(seeds, args.chunk_size)[0],
            }
            reset_peak_rss()
            row |= time_jax(seeds, args.epochs, data, rule, args.chunk_size)
            row["jax_seed_epochs_per_s"] = seeds * args.epochs / row["run_s"]
            numpy_seeds = min(seeds, args.numpy_max_seeds)
            row["numpy_seed_epochs_per_s"] = time_numpy(
                numpy_seeds, args.numpy_epochs, train_set.x, train_set.y, rule
            )
            row["speedup"] = row["jax_seed_epochs_per_s"] / row["numpy_seed_epochs_per_s"]
            row["peak_rss_mb"] = peak_rss_mb()  # of this row: JAX and NumPy runs together
            row["import_s"] = imported
            rows.append(row)
            print(
                f"{rule:>8} S={seeds:>6}: {row['jax_seed_epochs_per_s']:.3g} seed-epochs/s (compile "
                f"{row['compile_s']:.2f} s, run {row['run_s']:.2f} s, program {row['program_mb']:.1f} MB)  "
                f"numpy {row['numpy_seed_epochs_per_s']:.3g}/s  x{row['speedup']:.1f}",
                flush=True,
            )
    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False)
    with pd.option_context("display.width", 200, "display.float_format", "{:.3g}".format):
        print(table.to_string(index=False))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
