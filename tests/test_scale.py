"""Speed and scale, end to end in processes of their own: the benchmark command, several devices, the
progress line, the persistent compilation cache, and the submitit launcher; and in this
process, the chunk layout and the article rule's float32 slope.

Processes that do not depend on each other are started together (`start`, then `finish`).
"""

import json
import os
import re
import subprocess
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import conftest
from conftest import Done, assert_ok
from gophernet_jax import Sizes, init_params, train_population
from gophernet_jax.model import seeds_last
from gophernet_jax.training import (
    _article_slope,
    _unit_article_slope,
    chunking,
    population_article_direction,
)

DEVICE_FLAG = "--xla_force_host_platform_device_count"
DEVICES_RUN = ["seeds.count=40", "train.epochs=50", "train.chunk_size=10"]
# Without curves the progress line makes the program record blocks of epochs it would not
# record otherwise: the comparison then covers a program that really differs.
PROGRESS_RUN = ["seeds.count=16", "train.epochs=60", "report.curve_every=0"]
PROGRESS_LINE = re.compile(r"seed-epochs\s+\S+/s")


def env_with_devices(devices: int | None, *xla_flags: str) -> dict[str, str]:
    """This environment with XLA forced to `devices` host devices (other XLA flags kept, and
    `xla_flags` added); None leaves the count to the package (its default: one per usable core)."""
    env = os.environ.copy()
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_FLAG)]
    flags += xla_flags
    if devices is not None:
        flags.append(f"{DEVICE_FLAG}={devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    return env


def start(where: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Starts `python *args` in `where`, in a process of its own, output piped (stderr no terminal)."""
    return conftest.start(*args, cwd=where, env=env)


def finish(proc: subprocess.Popen) -> Done:
    """Waits for `proc`; fails the test if it did not exit 0 or printed a traceback."""
    return assert_ok(conftest.finish(proc))


def cli(where: Path, run_dir: Path, *overrides: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return start(where, "-m", "gophernet_jax", *overrides, f"hydra.run.dir={run_dir}", env=env)


def assert_same_results(a: Path, b: Path) -> None:
    """results.csv and every params.npz array are exactly equal; so is the config saved with
    the params, but for its `runtime` settings (which must not change a result)."""
    ra, rb = pd.read_csv(a / "results.csv"), pd.read_csv(b / "results.csv")
    assert len(ra) > 0
    pd.testing.assert_frame_equal(ra, rb, check_exact=True)
    with np.load(a / "params.npz") as pa, np.load(b / "params.npz") as pb:
        assert pa.files == pb.files
        for name in set(pa.files) - {"meta"}:
            np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)
        ma, mb = (json.loads(str(p["meta"])) for p in (pa, pb))
    ma["config"].pop("runtime"), mb["config"].pop("runtime")
    assert ma == mb


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


# --- the benchmark ----------------------------------------------------------------------


@pytest.mark.slow
def test_benchmark_rates_on_tiny_sizes_write_their_table(tmp_path):
    args = [
        "--seeds",
        "8",
        "--epochs",
        "20",
        "--numpy-epochs",
        "5",
        "--out",
        "tmp/b.csv",
        "--rules",
        "article",
        "--net-seeds",
        "2",
        "--net-epochs",
        "2",
        "--net-cases",
        "1",  # wine at 64 hidden: of the three cases, the one that compiles and loads soonest
        "--net-repeats",
        "2",
    ]
    done = finish(start(tmp_path, "-m", "gophernet_jax.bench", *args, "--no-end-to-end"))
    # The networks' table, beside the plain jit(vmap) script: its second case at 2 seeds × 2 epochs.
    networks = pd.read_csv(tmp_path / "tmp" / "b_networks.csv")
    assert list(networks["table"]) == ["wine"] and list(networks["hidden"]) == [64]
    assert (networks["seeds"] == 2).all()
    assert (networks["speedup"] > 0).all() and (networks["plain_seed_epochs_per_s"] > 0).all()
    for name in ("project", "plain"):  # each rate is its fastest of the two timed runs
        runs = [float(t) for t in networks[f"{name}_runs_s"][0].split()]
        assert len(runs) == 2
        np.testing.assert_allclose(networks[f"{name}_seed_epochs_per_s"][0], 2 * 2 / min(runs), rtol=1e-3)

    table = pd.read_csv(tmp_path / "tmp" / "b.csv")
    assert list(zip(table["rule"], table["seeds"])) == [("article", 8)]
    assert (table["epochs"] == 20).all()
    assert (table["devices"] == len(os.sched_getaffinity(0))).all()
    for column in (
        "jax_seed_epochs_per_s",
        "jax_1_device_seed_epochs_per_s",
        "devices_speedup",
        "numpy_seed_epochs_per_s",
        "compile_s",
        "peak_rss_mb",
        "import_s",
        "jax_gflops",
        "gemm_gflops",
    ):
        assert (table[column] > 0).all(), column
    # GFLOP/s of the article's matrix products: 6 × 120 rows × (4·3 + 3·3) per seed-epoch.
    assert np.allclose(table["jax_gflops"], table["jax_seed_epochs_per_s"] * 6 * 120 * 21 / 1e9)
    assert re.search(r"^import gophernet_jax\.app: \d+\.\d+ s", done.stdout, re.M), done.stdout
    header = next(line for line in done.stdout.splitlines() if "jax_seed_epochs_per_s" in line)
    assert {"rule", "seeds", "compile_s", "numpy_seed_epochs_per_s", "peak_rss_mb"} <= set(header.split())
    assert "written to tmp/b.csv" in done.stdout
    assert not (tmp_path / "tmp" / "b_end_to_end.csv").exists()  # --no-end-to-end


@pytest.mark.parametrize("flag", ["--numpy-epochs", "--net-seeds", "--net-repeats", "--end-to-end-epochs"])
def test_benchmark_counts_below_one_are_a_usage_error_naming_the_flag(flag, tmp_path, capsys):
    """A count of 0 stops with one line naming the flag, exit 2, before measuring anything
    (`--numpy-epochs 0` divided by zero after the JAX timings)."""
    from gophernet_jax.bench import main

    out = tmp_path / "b.csv"
    with pytest.raises(SystemExit) as stop:
        main(["--only", "rates", flag, "0", "--out", str(out)])
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"python -m gophernet_jax.bench: error: {flag}: must be >= 1"
    assert not out.parent.joinpath("b.csv").exists()


@pytest.mark.slow
def test_benchmark_end_to_end_alone_leaves_the_rates_table_unwritten(tmp_path):
    # The user's two commands (made tiny) beside the hand-written script.
    args = ["--only", "end-to-end", "--end-to-end-epochs", "5", "--end-to-end-seeds", "3", "--repeats", "1"]
    done = finish(start(tmp_path, "-m", "gophernet_jax.bench", *args, "--out", "b.csv"))
    assert not (tmp_path / "b.csv").exists()
    ends = pd.read_csv(tmp_path / "b_end_to_end.csv")
    assert list(ends["command"]) == ["python -m gophernet_jax", "python -m gophernet_jax +sweep=seeds"]
    assert list(ends["seeds"]) == [1, 3] and (ends["epochs"] == 5).all()
    for column in ("project_median_s", "handwritten_median_s", "ratio"):
        assert (ends[column] > 0).all(), column
    assert (ends["repeats"] == 1).all()
    assert all(len(str(runs).split()) == 1 for runs in [*ends["project_s"], *ends["handwritten_s"]])
    assert "written to b_end_to_end.csv" in done.stdout


@pytest.mark.slow
def test_handwritten_script_trains_without_the_package(tmp_path):
    script = Path(__file__).resolve().parents[1] / "gophernet_jax" / "handwritten.py"
    # The modules the script imported: jax, numpy, the standard library; not the package.
    code = (
        f"import runpy, sys; sys.argv = ['x', '--seeds', '3', '--epochs', '5']; "
        f"runpy.run_path({str(script)!r}, run_name='__main__'); "
        f"print(sorted(m for m in sys.modules if m.startswith('gophernet_jax')))"
    )
    done = finish(start(tmp_path, "-P", "-c", code))
    assert re.search(r"^3 seeds x 5 epochs on \d+ device\(s\): mean test accuracy [01]\.\d{4}", done.stdout)
    assert done.stdout.splitlines()[-1] == "[]"


# --- every local device -----------------------------------------------------------------

COUNT = "import gophernet_jax, jax; print(jax.local_device_count())"


@pytest.mark.slow
def test_the_package_makes_a_host_device_per_usable_core_unless_told_otherwise(tmp_path):
    cores = len(os.sched_getaffinity(0))
    configure = "from gophernet_jax import runtime; runtime.configure(False, None, host_devices={}); "
    procs = {
        "default": start(tmp_path, "-c", COUNT, env=env_with_devices(None)),
        "one core": start(
            tmp_path,
            "-c",
            f"import os; os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}}); {COUNT}",
            env=env_with_devices(None),
        ),
        "XLA_FLAGS": start(tmp_path, "-c", COUNT, env=env_with_devices(3)),
        "off": start(tmp_path, "-c", configure.format(1) + COUNT, env=env_with_devices(None)),
        "config over XLA_FLAGS": start(tmp_path, "-c", configure.format(2) + COUNT, env=env_with_devices(3)),
        "auto keeps XLA_FLAGS": start(
            tmp_path, "-c", configure.format("'auto'") + COUNT, env=env_with_devices(3)
        ),
        "too late": start(
            tmp_path, "-c", COUNT + "; " + configure.format(cores + 1), env=env_with_devices(None)
        ),
    }
    counts = {name: finish(proc) for name, proc in procs.items()}
    assert {name: done.stdout.split() for name, done in counts.items()} == {
        "default": [str(cores)],
        "one core": ["1"],
        "XLA_FLAGS": ["3"],
        "off": ["1"],
        "config over XLA_FLAGS": ["2"],
        "auto keeps XLA_FLAGS": ["3"],
        "too late": [str(cores)],
    }
    assert (
        f"JAX started with {cores} CPU devices; runtime.host_devices={cores + 1}" in counts["too late"].stderr
    )
    assert counts["default"].stderr == ""


@pytest.mark.parametrize("value", [0, -1, "two", 1.5, True])
def test_host_devices_setting_is_checked(value):
    from gophernet_jax import runtime

    with pytest.raises(ValueError, match="runtime.host_devices"):
        runtime.configure(False, None, host_devices=value)


@pytest.mark.slow
def test_two_host_devices_give_the_results_of_one(tmp_path):
    procs = {
        devices: (
            cli(tmp_path, tmp_path / f"devices{devices}", *DEVICES_RUN, env=env_with_devices(devices)),
            start(tmp_path, "-c", COUNT, env=env_with_devices(devices)),
        )
        for devices in (1, 2)
    }
    for devices, (run, check) in procs.items():
        finish(run)
        assert finish(check).stdout.split() == [str(devices)]
    assert_same_results(tmp_path / "devices1", tmp_path / "devices2")
    assert summary(tmp_path / "devices1")["test_accuracy"] == summary(tmp_path / "devices2")["test_accuracy"]


@pytest.mark.slow
def test_two_host_devices_with_a_seed_count_they_do_not_divide(tmp_path):
    # 41 seeds in chunks of at most 10, narrower than a block of 16 (`training.chunk_layout`):
    # one device trains 5 chunks of 9 seeds; two devices train 6 chunks of 7 (3 each, 1
    # padding seed). Chunks of another width, same numbers (the article's network).
    run = ["seeds.count=41", "train.epochs=20", "train.chunk_size=10"]
    assert chunking(41, 10, 1) == (5, 9) and chunking(41, 10, 2) == (6, 7)
    procs = [cli(tmp_path, tmp_path / f"devices{n}", *run, env=env_with_devices(n)) for n in (1, 2)]
    for proc in procs:
        finish(proc)
    assert_same_results(tmp_path / "devices1", tmp_path / "devices2")
    assert len(pd.read_csv(tmp_path / "devices2" / "results.csv")) == 41


@pytest.mark.slow
def test_seeds_with_splits_of_their_own_give_the_same_results_on_one_device_as_on_two(tmp_path):
    # Each seed scales its own split inside the program. On one device XLA rewrote the
    # division by the training part's span into a product with its reciprocal, and not on
    # two: every weight of these seeds differed (`splits.minmax_scale`, keep_division).
    run = ["data=iris", "seeds.vary=[init,split]", "seeds.count=40", "train.epochs=30"]
    procs = [cli(tmp_path, tmp_path / f"devices{n}", *run, env=env_with_devices(n)) for n in (1, 2)]
    for proc in procs:
        finish(proc)
    assert_same_results(tmp_path / "devices1", tmp_path / "devices2")
    splits = pd.read_csv(tmp_path / "devices2" / "results.csv")["split_seed"]
    assert splits.nunique() == 40  # a split each


# --- the chunk layout -------------------------------------------------------------------


def test_padding_stays_under_one_seed_per_chunk_and_under_one_chunk():
    assert chunking(1001, 500, 2) == (4, 251)  # 1004 seeds trained, not 1336
    for devices in (1, 2, 3, 4, 8):
        for chunk_size in (1, 2, 3, 7, 10, 500):
            for count in range(1, 400):
                chunks, width = chunking(count, chunk_size, devices)
                padding = chunks * width - count
                assert chunks % devices == 0 and width <= chunk_size
                # the fewest chunks the devices can share: one chunk less each would not hold the seeds
                assert (chunks - devices) * chunk_size < count
                assert 0 <= padding < chunks
                if (chunks - 1) ** 2 < count:
                    assert padding < width, (count, chunk_size, devices)
    # At chunks of 500: under one chunk for every count on one device, and from 2 seeds to
    # 249 000 on two.
    for devices, counts in [(1, range(1, 300_000)), (2, range(2, 249_001))]:
        for count in counts:
            chunks, width = chunking(count, 500, devices)
            assert chunks * width - count < width, (count, devices)


@pytest.mark.parametrize("rule", ["autodiff", "article"])
def test_chunk_width_does_not_change_a_seeds_numbers(article_data, rule):
    # Seeds 0..29 trained in chunks of 30, of 7 (5 chunks, 5 padding seeds), and inside
    # chunks of 251: bit for bit the same, so any device count trains the same numbers.
    (train_set, test_set), kw = article_data, {"epochs": 300, "learning_rate": 0.3, "rule": rule}
    data = (train_set.x, train_set.y), (test_set.x, test_set.y)
    runs = [
        train_population(0, count, Sizes(4, 3, 3), *data, chunk_size=chunk, **kw)
        for count, chunk in [(30, 30), (30, 7), (251, 251)]
    ]
    for other in runs[1:]:
        for a, b in zip(jax.tree.leaves(runs[0]), jax.tree.leaves(other)):
            np.testing.assert_array_equal(a, b[:30])


@pytest.mark.parametrize("rule", ["autodiff", "article"])
def test_one_seed_is_seed_0_of_any_population(article_data, rule):
    # A chunk is a block of 16 seeds at least (`training.chunk_layout`): alone, in a chunk of
    # one, seed 0's last bits differed from its own in a population.
    (train_set, test_set), kw = article_data, {"epochs": 300, "learning_rate": 0.3, "rule": rule}
    data = (train_set.x, train_set.y), (test_set.x, test_set.y)
    alone, among = (train_population(0, count, Sizes(4, 3, 3), *data, **kw) for count in (1, 5))
    for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(among)):
        np.testing.assert_array_equal(a, b[:1])


# --- the article rule's float32 slope ---------------------------------------------------


def test_article_slope_in_float32_is_within_one_ulp_on_the_unit_interval():
    a = np.concatenate([np.linspace(0, 1, 1_000_001, dtype=np.float32), np.float32([1e-38, 1e-20, 1])])
    exact = 1.0 / (2.0 + 2.0 * np.cosh(a.astype(np.float64)))  # σ(a)(1 − σ(a)), in float64
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    fast = np.asarray(jax.jit(_unit_article_slope)(a), np.float64)
    assert fast.dtype == np.float64 and np.max(np.abs(fast - exact) / ulp) < 1.0
    reference = np.asarray(jax.jit(_article_slope)(a), np.float64)  # the exponentials' own error
    assert np.max(np.abs(fast - exact) / ulp) < np.max(np.abs(reference - exact) / ulp)
    assert np.isnan(_unit_article_slope(jnp.float32(np.nan)))


def test_article_direction_in_float32_agrees_with_float64(article_data, x64):
    train_set, _ = article_data
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(0), jnp.arange(64))
    single = seeds_last(jax.vmap(init_params, in_axes=(0, None))(keys, Sizes(4, 3, 3)))
    double = jax.tree.map(lambda a: a.astype(jnp.float64), single)
    direction = jax.jit(population_article_direction)  # as training runs it (and compiled once, not op by op)
    got, want = (
        direction(p, jnp.asarray(train_set.x, t), jnp.asarray(train_set.y, t))
        for p, t in ((single, jnp.float32), (double, jnp.float64))
    )
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert a.dtype == jnp.float32
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * float(jnp.max(jnp.abs(b))))


# --- the progress line ------------------------------------------------------------------


@pytest.mark.slow
def test_progress_line_on_request_quiet_when_not_a_terminal_and_free_of_effects(tmp_path):
    shown = cli(tmp_path, tmp_path / "shown", *PROGRESS_RUN, "runtime.progress=true")
    auto = cli(tmp_path, tmp_path / "auto", *PROGRESS_RUN)  # runtime.progress=auto, stderr a pipe
    shown, auto = finish(shown), finish(auto)

    assert PROGRESS_LINE.search(shown.stderr), shown.stderr
    assert "100%" in shown.stderr, shown.stderr
    assert "seed-epochs" not in auto.stderr + auto.stdout, auto.stderr
    assert not PROGRESS_LINE.search(auto.stderr), auto.stderr
    assert_same_results(tmp_path / "auto", tmp_path / "shown")


# --- the persistent compilation cache ---------------------------------------------------


@pytest.mark.slow
def test_compilation_cache_is_filled_then_used(tmp_path):
    cache = tmp_path / "cache"
    key = f"runtime.compilation_cache={cache}"
    finish(cli(tmp_path, tmp_path / "first", *PROGRESS_RUN, key))
    filled = sorted(p.name for p in cache.iterdir())
    assert any(name.startswith("jit_run_population-") for name in filled), filled

    finish(cli(tmp_path, tmp_path / "second", *PROGRESS_RUN, key))
    # Every program of the second run was found in the cache: none was written anew...
    assert sorted(p.name for p in cache.iterdir()) == filled
    # ...so the second run compiled nothing: every program the first compiled it loaded.
    first, second = summary(tmp_path / "first"), summary(tmp_path / "second")
    assert first["compilations"] >= 1 and first["cache_hits"] == 0, first
    assert second["compilations"] == 0 and second["cache_hits"] == first["compilations"], second
    assert second["compile_seconds"] == 0, second
    assert_same_results(tmp_path / "first", tmp_path / "second")


# --- the same numbers on CPUs without AVX-512 --------------------------------------------

#: Trains seeds in a fresh process and prints, per rule, their final losses and test
#: accuracies as JSON. argv: count, chunk size, epochs. XLA_FLAGS and ONEDNN_MAX_CPU_ISA come
#: from the test; the suite's compilation cache as the CLI would use it (its key holds the XLA
#: flags; oneDNN picks its kernels when the program runs, so a loaded program obeys the ISA).
WIDTH_PROBE = """
import json, sys
from gophernet_jax import Sizes, load_split, runtime, train_population
from gophernet_jax.config import DATA_DIR, RuntimeConfig
runtime.configure(ynn_fusion=False, compilation_cache=RuntimeConfig().cache_folder())
count, chunk, epochs = map(int, sys.argv[1:])
tr, te = load_split(DATA_DIR / "train.csv", DATA_DIR / "test.csv", padding_row=True)
pops = {rule: train_population(0, count, Sizes(4, 3, 3), (tr.x, tr.y), (te.x, te.y), epochs=epochs,
                               learning_rate=0.3, rule=rule, chunk_size=chunk)
        for rule in ("autodiff", "article")}
print(json.dumps({rule: [p.final_loss.tolist(), p.test_accuracy.tolist()] for rule, p in pops.items()}))
"""


#: Older instruction sets on any x86-64 machine: oneDNN's kernels (`ONEDNN_MAX_CPU_ISA`) and
#: XLA's own code (`--xla_cpu_max_isa`) limited together. AVX2 (with FMA) is what the CPUs
#: without AVX-512 run; SSE4.1/4.2 is older still. Only AVX2 runs the 250-of-1000 pair too.
ISA_LIMITS = {
    "avx2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "--xla_cpu_max_isa=AVX2", True),
    "sse4": ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, "--xla_cpu_max_isa=SSE4_2", False),
}


@pytest.mark.slow
@pytest.mark.parametrize("isa", list(ISA_LIMITS))
def test_older_matrix_kernels_leave_a_seed_independent_of_chunk_width_and_devices(tmp_path, isa):
    """XLA's CPU matrix product is oneDNN's sgemm, which picks its kernel from the CPU when it
    runs; `ONEDNN_MAX_CPU_ISA=AVX2` gives any x86-64 machine the kernels of an AVX2 CPU
    (`--xla_cpu_max_isa` limits XLA's own code only, and did not show the dependence alone;
    both are set here). With one product as wide as the chunk, 41 seeds in chunks of 10 on 1
    against 2 devices differed in 27 of 41 final losses there, and 250 seeds against the
    first 250 of 1000 in 93. Exact equality is asserted, for both rules: this compares runs
    on this machine, not with committed numbers. A chunk of at most 16 seeds (one block of
    `model.shared_product`) computed otherwise than the same seeds among wider chunks there
    until every product got two blocks at least (autodiff: all 41 final losses differed
    between chunks of 9 and one of 41). The same holds natively on an AVX2 CPU (AMD EPYC,
    no AVX-512; README, Reproducibility). The processes run side by side."""
    limits, xla_flag, population_pair = ISA_LIMITS[isa]
    runs = {"one": (41, 10, 1), "two": (41, 10, 2), "wide": (41, 500, 1)}
    if population_pair:
        runs |= {"few": (250, 500, 2), "many": (1000, 500, 2)}
    procs = {
        name: start(
            tmp_path,
            "-c",
            WIDTH_PROBE,
            str(count),
            str(chunk),
            "200",
            env=env_with_devices(devices, xla_flag) | limits,
        )  # fmt: skip
        for name, (count, chunk, devices) in runs.items()
    }
    out = {name: json.loads(finish(proc).stdout.splitlines()[-1]) for name, proc in procs.items()}
    for rule in ("autodiff", "article"):
        assert out["one"][rule] == out["two"][rule] == out["wide"][rule], rule
        if population_pair:
            few, many = out["few"][rule], out["many"][rule]
            assert few[0] == many[0][:250] and few[1] == many[1][:250], rule
