"""Benchmark: seed-epochs per second, compile time and memory of the population trainer,
on one host device and on every usable core, beside a NumPy baseline (all seeds batched
in one array); then the user's two commands end to end, beside a hand-written JAX script.

    python -m gophernet_jax.bench                       # S = 1, 100, 1000, 10000 at 5000 epochs
    python -m gophernet_jax.bench --seeds 1000 --epochs 500 --out bench.csv
    python -m gophernet_jax.bench --only end-to-end --repeats 5

One seed-epoch is one full-batch step of one network on the 120 training rows. It first
times `import gophernet_jax.app` (what the CLI imports) in a fresh process. XLA fixes the
number of host devices when it starts, so each measurement of the trainer runs in a
process of its own, started with that many (`--xla_force_host_platform_device_count`),
one device count after the other.

End to end, `python -m gophernet_jax` (1 seed) and `python -m gophernet_jax +sweep=seeds`
(1000 seeds), 5000 epochs each, are timed from process start to exit, alternately with
`gophernet_jax/handwritten.py` training as many seeds; both get the XLA flags the package
sets for itself.

Two tables, printed and written as CSV:
- `--out` (bench.csv), a row per rule and S: `jax_seed_epochs_per_s` on `devices` host
  devices (every usable core), `jax_1_device_seed_epochs_per_s` and their ratio
  `devices_speedup`; `jax_gflops`, the first rate in GFLOP/s of its matrix products
  (6 × rows × Σ a·b per seed-epoch), beside `gemm_gflops`, the machine's float32 GEMM;
  `compile_s`, `run_s`, `program_mb` (XLA's estimate) and `peak_rss_mb` of the process
  that trained on every core; `numpy_seed_epochs_per_s` and `speedup`
  (JAX ÷ NumPy); `import_s`.
- `--end-to-end-out` (bench_end_to_end.csv), a row per command: `project_median_s`,
  `handwritten_median_s`, their `ratio`, and every run's seconds (`project_s`,
  `handwritten_s`).
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
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
from gophernet_jax.training import (
    Numbers,
    chunk_choice,
    chunk_layout,
    population_layout,
    population_spec,
    run_population,
)

HANDWRITTEN = Path(__file__).resolve().parent / "handwritten.py"


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
    spec = population_spec(seeds, Sizes(4, 3, 3), epochs=epochs, rule=rule, chunk_size=chunk_size)
    indices = population_layout(spec, ("init",))
    sources = {k: np.uint32(0) for k in ("split", "noise", "order")} | {"scale": np.float32(0.0)}
    train_x, train_y, test_x, test_y = data
    data = (train_x, train_y, None, None, test_x, test_y)  # no validation part
    numbers = Numbers.of(0.3, None, 0.1, "float32")
    args = (np.uint32(0), numbers, data, indices, sources, spec)
    start = time.perf_counter()
    compiled = run_population.lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args[:-1]))
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


def env_with_devices(devices: int) -> dict[str, str]:
    """This process's environment (the package's XLA flags included) with `devices` host devices."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(runtime.DEVICE_FLAG)]
    return os.environ | {"XLA_FLAGS": " ".join([*flags, f"{runtime.DEVICE_FLAG}={devices}"])}


def measure_in_subprocess(rule: str, seeds: int, devices: int, args: argparse.Namespace) -> dict:
    """`time_jax` and the peak memory of one population program, in a fresh process with
    `devices` host devices (`worker`)."""
    command = [
        sys.executable,
        "-m",
        "gophernet_jax.bench",
        "--worker",
        "--rules",
        rule,
        "--seeds",
        str(seeds),
    ]
    command += ["--epochs", str(args.epochs), "--chunk-size", str(args.chunk_size)]
    command += ["--ynn-fusion"] if args.ynn_fusion else []
    done = subprocess.run(command, env=env_with_devices(devices), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def chunk_for(args: argparse.Namespace, seeds: int) -> int:
    """`--chunk-size`: a width, or with "auto" the command line's choice (`training.chunk_choice`)
    for the article's network on its 120 training and 30 test rows."""
    if args.chunk_size != "auto":
        return int(args.chunk_size)
    return chunk_choice(seeds, Sizes(4, 3, 3), 150).size


def worker(args: argparse.Namespace) -> int:
    """Measures one rule at one seed count in this process; prints a JSON line."""
    runtime.configure(args.ynn_fusion, None)
    train_set, test_set = load_split(DATA_DIR / "train.csv", DATA_DIR / "test.csv")
    data = tuple(jnp.asarray(a, jnp.float32) for a in (train_set.x, train_set.y, test_set.x, test_set.y))
    reset_peak_rss()
    chunk = chunk_for(args, args.seeds[0])
    row = time_jax(args.seeds[0], args.epochs, jax.block_until_ready(data), args.rules[0], chunk)
    row |= {"peak_rss_mb": peak_rss_mb(), "devices": jax.local_device_count()}
    row["device_kind"] = f"{jax.devices()[0].device_kind}, {platform.machine()}"
    print(json.dumps(row))
    return 0


def rates(args: argparse.Namespace, imported: float, gemm: float) -> pd.DataFrame:
    """Seed-epochs per second per rule and seed count: all usable cores as host devices (the
    package's default) and one, alternately, each in its own process; NumPy in this one.
    GFLOP/s of each rate (its matrix products, `netbench.flops_per_seed_epoch`), and the
    machine's float32 GEMM rate for scale (`gemm`, `measure_gemm`)."""
    from gophernet_jax.netbench import flops_per_seed_epoch

    cores = runtime.usable_cores()
    train_set, _ = load_split(DATA_DIR / "train.csv", DATA_DIR / "test.csv")
    flops = flops_per_seed_epoch(len(train_set.x), (train_set.x.shape[1], 3, train_set.y.shape[1]))
    rows = []
    for seeds in args.seeds:  # the rules one after the other at each S: they meet the same load
        for rule in args.rules:
            runs = {d: measure_in_subprocess(rule, seeds, d, args) for d in dict.fromkeys([cores, 1])}
            row = {"rule": rule, "seeds": seeds, "epochs": args.epochs, "devices": cores}
            row["chunk_size"] = chunk_for(args, seeds)
            row["chunks"] = chunk_layout(seeds, row["chunk_size"], cores)[0]
            row |= {k: runs[cores][k] for k in ("compile_s", "run_s", "program_mb", "peak_rss_mb")}
            row["jax_seed_epochs_per_s"] = seeds * args.epochs / runs[cores]["run_s"]
            row["jax_1_device_seed_epochs_per_s"] = seeds * args.epochs / runs[1]["run_s"]
            row["devices_speedup"] = row["jax_seed_epochs_per_s"] / row["jax_1_device_seed_epochs_per_s"]
            row["jax_gflops"] = row["jax_seed_epochs_per_s"] * flops / 1e9
            row["gemm_gflops"] = gemm
            numpy_seeds = min(seeds, args.numpy_max_seeds)
            row["numpy_seed_epochs_per_s"] = time_numpy(
                numpy_seeds, args.numpy_epochs, train_set.x, train_set.y, rule
            )
            row["speedup"] = row["jax_seed_epochs_per_s"] / row["numpy_seed_epochs_per_s"]
            row["import_s"] = imported
            rows.append(row)
            print(
                f"{rule:>8} S={seeds:>6}: {row['jax_seed_epochs_per_s']:.3g} seed-epochs/s "
                f"({row['jax_gflops']:.2f} GFLOP/s of a {gemm:.0f} GEMM) on {cores} "
                f"device(s), {row['jax_1_device_seed_epochs_per_s']:.3g} on 1 "
                f"(x{row['devices_speedup']:.2f}; compile {row['compile_s']:.2f} s, "
                f"run {row['run_s']:.2f} s, program {row['program_mb']:.1f} MB)  "
                f"numpy {row['numpy_seed_epochs_per_s']:.3g}/s  x{row['speedup']:.1f}",
                flush=True,
            )
    print(f"jax {jax.__version__} on {runs[1]['device_kind']}; {cores} usable core(s)")
    rows.sort(key=lambda row: (args.rules.index(row["rule"]), args.seeds.index(row["seeds"])))
    return pd.DataFrame(rows)


def end_to_end(args: argparse.Namespace) -> pd.DataFrame:
    """The user's two commands from process start to exit, alternately with the hand-written
    script training as many seeds, `args.repeats` times each; medians and their ratio."""
    epochs = [] if args.end_to_end_epochs == 5000 else [f"train.epochs={args.end_to_end_epochs}"]
    sweep = [] if args.end_to_end_seeds == 1000 else [f"seeds.count={args.end_to_end_seeds}"]
    cases = [
        ("python -m gophernet_jax", 1, epochs),
        ("python -m gophernet_jax +sweep=seeds", args.end_to_end_seeds, ["+sweep=seeds", *epochs, *sweep]),
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="gophernet_bench_") as tmp:
        for name, seeds, overrides in cases:
            # -P: the script's folder is not put on sys.path (its statistics.py is not the stdlib's)
            handwritten = [sys.executable, "-P", str(HANDWRITTEN), "--seeds", str(seeds)]
            handwritten += ["--epochs", str(args.end_to_end_epochs)]
            times: dict[str, list[float]] = {"project": [], "handwritten": []}
            for repeat in range(args.repeats):
                run_dir = f"hydra.run.dir={Path(tmp) / f'{len(rows)}-{repeat}'}"
                for kind, command in (
                    ("project", [sys.executable, "-m", "gophernet_jax", *overrides, run_dir]),
                    ("handwritten", handwritten),
                ):
                    start = time.perf_counter()
                    done = subprocess.run(command, cwd=tmp, capture_output=True, text=True)
                    times[kind].append(time.perf_counter() - start)
                    if done.returncode:
                        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
            project, hand = statistics.median(times["project"]), statistics.median(times["handwritten"])
            rows.append({
                "command": name, "seeds": seeds, "epochs": args.end_to_end_epochs, "repeats": args.repeats,
                "project_median_s": project, "handwritten_median_s": hand, "ratio": project / hand,
                "project_s": " ".join(f"{t:.2f}" for t in times["project"]),
                "handwritten_s": " ".join(f"{t:.2f}" for t in times["handwritten"]),
            })  # fmt: skip
            print(
                f"{name} ({seeds} x {args.end_to_end_epochs}): median {project:.2f} s "
                f"({rows[-1]['project_s']}) against {hand:.2f} s hand-written ({rows[-1]['handwritten_s']}): "
                f"x{project / hand:.2f}",
                flush=True,
            )
    return pd.DataFrame(rows)


def _net_worker(kind: str, case: int, args: argparse.Namespace, devices: int) -> dict:
    command = [sys.executable, "-m", "gophernet_jax.netbench", kind, str(case)]
    command += [str(args.net_seeds), str(args.net_epochs), str(args.net_repeats)]
    done = subprocess.run(command, env=env_with_devices(devices), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def measure_gemm(args: argparse.Namespace) -> float:
    """The machine's float32 GEMM rate (GFLOP/s), in a process of its own with one device;
    measured once per benchmark, for the rates and the networks alike."""
    gemm = _net_worker("gemm", 0, args, 1)["gemm_gflops"]
    print(f"float32 GEMM (2048³, XLA's default CPU device): {gemm:.1f} GFLOP/s", flush=True)
    return gemm


def networks(args: argparse.Namespace, gemm: float) -> pd.DataFrame:
    """Wider networks (`netbench.CASES`): the project's population trainer on every usable
    core against a plain `jit(vmap(train_one))` with XLA's default single CPU device,
    alternately, each in its own process, each rate the fastest of `--net-repeats` runs;
    GFLOP/s of each and the machine's GEMM rate."""
    from gophernet_jax.netbench import CASES, flops_per_seed_epoch

    cores = runtime.usable_cores()
    rows = []
    for case, (table, _, hidden) in enumerate(CASES):
        if args.net_cases is not None and case not in args.net_cases:
            continue
        plain, ours = _net_worker("plain", case, args, 1), _net_worker("project", case, args, cores)
        seed_epochs = args.net_seeds * args.net_epochs
        flops = flops_per_seed_epoch(ours["rows"], tuple(ours["widths"]))
        row = {"table": table, "hidden": "x".join(map(str, hidden)), "seeds": args.net_seeds}
        row |= {"epochs": args.net_epochs, "devices": cores}
        for name, run in (("project", ours), ("plain", plain)):
            rate = seed_epochs / run["run_s"]
            row |= {f"{name}_seed_epochs_per_s": rate, f"{name}_gflops": rate * flops / 1e9}
            row |= {f"{name}_compile_s": run["compile_s"], f"{name}_loss": run["loss"]}
            row |= {f"{name}_runs_s": " ".join(f"{t:.4g}" for t in run["runs_s"])}
        row["speedup"] = row["project_seed_epochs_per_s"] / row["plain_seed_epochs_per_s"]
        row["gemm_gflops"] = gemm
        rows.append(row)
        print(
            f"{table} hidden {row['hidden']}: project {row['project_seed_epochs_per_s']:.3g} seed-epochs/s "
            f"({row['project_gflops']:.1f} GFLOP/s, compile {ours['compile_s']:.1f} s), plain jit(vmap) "
            f"{row['plain_seed_epochs_per_s']:.3g} ({row['plain_gflops']:.1f} GFLOP/s, compile "
            f"{plain['compile_s']:.1f} s): x{row['speedup']:.2f}; GEMM {gemm:.0f} GFLOP/s; "
            f"best of {args.net_repeats} runs each",
            flush=True,
        )
    return pd.DataFrame(rows)


def show(table: pd.DataFrame, out: Path) -> None:
    table.to_csv(out, index=False)
    with pd.option_context("display.width", 250, "display.float_format", "{:.3g}".format):
        print(table.to_string(index=False))
    print(f"written to {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gophernet_jax.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 100, 1000, 10000])
    parser.add_argument("--epochs", type=int, default=5000)
    parser.add_argument(
        "--rules", nargs="+", default=["autodiff", "article"], choices=["autodiff", "article"]
    )
    parser.add_argument(
        "--chunk-size",
        type=lambda v: v if v == "auto" else int(v),
        default="auto",
        help="seeds per chunk, or auto: the command line's choice (before 2026-12-07: 512)",
    )
    parser.add_argument("--numpy-epochs", type=int, default=100, help="epochs of the NumPy timing run")
    parser.add_argument(
        "--numpy-max-seeds", type=int, default=1000, help="NumPy times at most this many seeds"
    )
    parser.add_argument("--ynn-fusion", action="store_true", help="leave XLA's YNN fusion on")
    parser.add_argument("--out", type=Path, default=Path("bench.csv"))
    parser.add_argument(
        "--end-to-end", action=argparse.BooleanOptionalAction, default=True,
        help="time the user's two commands beside the hand-written script (default: on)",
    )  # fmt: skip
    parser.add_argument(
        "--only", choices=["rates", "end-to-end", "networks"], help="run one part of the benchmark"
    )
    parser.add_argument("--net-seeds", type=int, default=200, help="seeds of each networks case")
    parser.add_argument("--net-epochs", type=int, default=100, help="epochs of each networks case")
    parser.add_argument(
        "--net-repeats", type=int, default=3, help="timed runs of each networks case; the fastest counts"
    )
    parser.add_argument(
        "--net-cases", type=int, nargs="+", help="the networks cases to run, by index (default: all)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="end-to-end runs of each command")
    parser.add_argument(
        "--end-to-end-epochs", type=int, default=5000, help="epochs of both commands (default: theirs)"
    )
    parser.add_argument(
        "--end-to-end-seeds", type=int, default=1000, help="seeds of the sweep command (default: its 1000)"
    )
    parser.add_argument(
        "--end-to-end-out", type=Path, help="its CSV (default: beside --out, named *_end_to_end.csv)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    counts = {"--seeds": min(args.seeds), "--epochs": args.epochs, "--repeats": args.repeats}
    counts |= {"--numpy-epochs": args.numpy_epochs, "--numpy-max-seeds": args.numpy_max_seeds}
    counts |= {"--net-seeds": args.net_seeds, "--net-epochs": args.net_epochs}
    counts |= {"--net-repeats": args.net_repeats}
    counts |= {"--end-to-end-epochs": args.end_to_end_epochs, "--end-to-end-seeds": args.end_to_end_seeds}
    if any(n < 1 for n in counts.values()):
        parser.error(f"{', '.join(k for k, n in counts.items() if n < 1)}: must be >= 1")
    if args.worker:
        return worker(args)
    e2e_out = args.end_to_end_out or args.out.with_name(f"{args.out.stem}_end_to_end.csv")
    do_rates, do_e2e = (
        args.only in (None, "rates"),
        args.only == "end-to-end" or (args.only is None and args.end_to_end),
    )
    do_networks = args.only in (None, "networks")
    for path in [args.out] * (do_rates or do_networks) + [e2e_out] * do_e2e:
        path.parent.mkdir(parents=True, exist_ok=True)  # before the measurements, not after them

    gemm = measure_gemm(args) if do_rates or do_networks else 0.0
    if do_rates:
        imported, process = import_seconds()
        print(
            f"import gophernet_jax.app: {imported:.2f} s (fresh interpreter, {process:.2f} s in all)",
            flush=True,
        )
        show(rates(args, imported, gemm), args.out)
    if do_e2e:
        show(end_to_end(args), e2e_out)
    if do_networks:
        show(networks(args, gemm), args.out.with_name(f"{args.out.stem}_networks.csv"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
