"""Speed and scale, end to end in subprocesses: the benchmark command, several devices, the
progress line, the persistent compilation cache, and the submitit launcher.

Processes that do not depend on each other are started together (`start`, then `finish`).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

DEVICE_FLAG = "--xla_force_host_platform_device_count"
DEVICES_RUN = ["seeds.count=40", "train.epochs=50", "train.chunk_size=10"]
# Without curves the progress line makes the program record blocks of epochs it would not
# record otherwise: the comparison then covers a program that really differs.
PROGRESS_RUN = ["seeds.count=16", "train.epochs=60", "report.curve_every=0"]
SWEEP = ["-m", "optimizer.learning_rate=0.1,0.3", "seeds.count=16", "train.epochs=60"]
# The sweep summary's statistics: what the launcher must not change (not seconds, not compilations).
STATISTICS = [
    "optimizer.learning_rate", "job", "status", "seeds", "mean", "std", "min", "q05", "median", "q95",
    "max", "ci95_low", "ci95_high", "diverged", "baseline", "paired", "difference",
    "difference_ci95_low", "difference_ci95_high", "p_better", "p_tie", "p_worse",
]  # fmt: skip
PROGRESS_LINE = re.compile(r"seed-epochs\s+\S+/s")


def env_with_devices(devices: int) -> dict[str, str]:
    """This environment with XLA forced to `devices` host devices (other XLA flags kept)."""
    env = os.environ.copy()
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_FLAG)]
    if devices > 1:
        flags.append(f"{DEVICE_FLAG}={devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    return env


def start(where: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Starts `python *args` in `where`, output piped (so stderr is not a terminal)."""
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, *args], cwd=where, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    """Waits for `proc`; fails the test if it did not exit 0 or printed a traceback."""
    stdout, stderr = proc.communicate(timeout=300)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    tail = f"{proc.args}\nexit {done.returncode}; stderr ends:\n{stderr[-3000:]}"
    assert done.returncode == 0, tail
    assert "Traceback" not in stdout + stderr, tail
    return done


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


def test_benchmark_runs_on_tiny_sizes_and_writes_its_table(tmp_path):
    args = ["--seeds", "1", "8", "--epochs", "20", "--numpy-epochs", "5", "--out", "tmp/b.csv"]
    done = finish(start(tmp_path, "-m", "gophernet_jax.bench", *args))

    table = pd.read_csv(tmp_path / "tmp" / "b.csv")
    assert sorted(zip(table["rule"], table["seeds"])) == [
        ("article", 1), ("article", 8), ("autodiff", 1), ("autodiff", 8)]  # fmt: skip
    assert (table["epochs"] == 20).all()
    for column in (
        "jax_seed_epochs_per_s",
        "numpy_seed_epochs_per_s",
        "compile_s",
        "peak_rss_mb",
        "import_s",
    ):
        assert (table[column] > 0).all(), column
    assert re.search(r"^import gophernet_jax\.app: \d+\.\d+ s", done.stdout, re.M), done.stdout
    header = next(line for line in done.stdout.splitlines() if "jax_seed_epochs_per_s" in line)
    assert {"rule", "seeds", "compile_s", "numpy_seed_epochs_per_s", "peak_rss_mb"} <= set(header.split())
    assert "written to tmp/b.csv" in done.stdout


# --- every local device -----------------------------------------------------------------


def test_two_host_devices_give_the_results_of_one(tmp_path):
    count = "import jax; print(jax.local_device_count())"
    procs = {
        devices: (
            cli(tmp_path, tmp_path / f"devices{devices}", *DEVICES_RUN, env=env_with_devices(devices)),
            start(tmp_path, "-c", count, env=env_with_devices(devices)),
        )
        for devices in (1, 2)
    }
    for devices, (run, check) in procs.items():
        finish(run)
        assert finish(check).stdout.split() == [str(devices)]
    assert_same_results(tmp_path / "devices1", tmp_path / "devices2")
    assert summary(tmp_path / "devices1")["test_accuracy"] == summary(tmp_path / "devices2")["test_accuracy"]


def test_two_host_devices_with_a_seed_count_they_do_not_divide(tmp_path):
    # 41 seeds in chunks of at most 10: 6 chunks of 7 seeds, 3 per device, 1 padding seed.
    run = ["seeds.count=41", "train.epochs=20", "train.chunk_size=10"]
    procs = [cli(tmp_path, tmp_path / f"devices{n}", *run, env=env_with_devices(n)) for n in (1, 2)]
    for proc in procs:
        finish(proc)
    assert_same_results(tmp_path / "devices1", tmp_path / "devices2")
    assert len(pd.read_csv(tmp_path / "devices2" / "results.csv")) == 41


# --- the progress line ------------------------------------------------------------------


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


def test_compilation_cache_is_filled_then_used(tmp_path):
    cache = tmp_path / "cache"
    key = f"runtime.compilation_cache={cache}"
    finish(cli(tmp_path, tmp_path / "first", *PROGRESS_RUN, key))
    filled = sorted(p.name for p in cache.iterdir())
    assert any(name.startswith("jit__train_population-") for name in filled), filled

    finish(cli(tmp_path, tmp_path / "second", *PROGRESS_RUN, key))
    # Every program of the second run was found in the cache: none was written anew...
    assert sorted(p.name for p in cache.iterdir()) == filled
    # ...and loading them is much faster than compiling them (about 1 s against 0.05 s here).
    first, second = summary(tmp_path / "first"), summary(tmp_path / "second")
    assert second["compilations"] == first["compilations"]
    assert second["compile_seconds"] < first["compile_seconds"] / 2, (first, second)
    assert_same_results(tmp_path / "first", tmp_path / "second")


# --- the submitit launcher --------------------------------------------------------------


def test_submitit_local_sweep_summary_equals_the_basic_launchers(tmp_path):
    basic = start(tmp_path, "-m", "gophernet_jax", *SWEEP, f"hydra.sweep.dir={tmp_path / 'basic'}")
    submitit = start(
        tmp_path,
        "-m",
        "gophernet_jax",
        *SWEEP,
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        f"hydra.sweep.dir={tmp_path / 'submitit'}",
    )
    finish(basic), finish(submitit)

    a, b = (pd.read_csv(tmp_path / folder / "summary.csv") for folder in ("basic", "submitit"))
    assert len(a) == 2 and (a["status"] == "ok").all()
    pd.testing.assert_frame_equal(a[STATISTICS], b[STATISTICS], check_exact=True)
    # The jobs really went through submitit: each left its logs and its pickled result.
    assert len(list((tmp_path / "submitit" / ".submitit").glob("*/*_result.pkl"))) == 2
