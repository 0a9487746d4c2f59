"""Shared fixtures: the article's data, strict dtype promotion as in Equinox's tests; and the
suite's one way to run a command (`command`, `cli`, `start`).

The `slow` marker means one thing: the test (or a fixture it uses) runs a command end to end:
`python -m gophernet_jax` (or its job, `run_job`), the predict or sweep command, or any
other process (a launcher's workers, pip). Every command run here and every process start
(counted where Python makes it: subprocess, multiprocessing's and loky's spawn, fork) is
recorded, and a test whose marker disagrees with what it did fails (`pytest_runtest_call`).
The fast tier (`-m "not slow"`) is then the library's own functions.
The CLI runs in this process unless a test needs a process of its own (an environment, a
signal, a pipe that closes): no interpreter start-up, and a program compiled by one test
is reused by the next.
"""

import _posixsubprocess
import atexit
import contextlib
import io
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import matplotlib
import numpy as np
import pytest

# JAX and the package are imported where they are used: pytest-xdist's controller, which
# runs no test, loads this file too, and starts its workers sooner without them.

# Every CLI run of the suite (subprocesses inherit the environment) shares one compilation
# cache of the suite's own: the suite neither reads nor fills the user's cache
# (`runtime.compilation_cache=auto`, which lands under XDG_CACHE_HOME, pointed here), and a
# program compiled once loads in later runs, of this session and of the next: the cache
# outlives the session, in `$XDG_CACHE_HOME/gophernet_jax/tests` (else
# `~/.cache/gophernet_jax/tests`), so the suite's second run on a machine compiles almost
# nothing (a fresh clone's too). JAX keys each program by its HLO, the compile options, the
# XLA flags and the jax/jaxlib versions, so a stale program is never loaded.
# GOPHERNET_JAX_TEST_CACHE names another folder, or `temp` for one made for this session
# and removed at its end (a cold run, as on a fresh machine). The process that starts
# first (pytest-xdist's controller, or pytest -n 0) decides; its workers inherit it, so a
# program one worker compiled loads in the other. matplotlib's font cache stays where it
# was: under the suite's cache every process of the suite would build it again (fc-list).
os.environ.setdefault("MPLCONFIGDIR", matplotlib.get_cachedir())
#: The suite's cache is pruned to half this size, oldest files first, when a session
#: starts above it (every code change adds programs; one whole run adds about 20 MB).
TEST_CACHE_BYTES = 1 << 30


def _decompressors() -> list:
    """Every format JAX writes its entries in: zstd where Python (3.14) or the zstandard
    package has it, else zlib."""
    found = [zlib.decompress]
    with contextlib.suppress(ImportError):
        from compression import zstd

        found.append(zstd.decompress)
    with contextlib.suppress(ImportError):
        import zstandard

        found.append(zstandard.ZstdDecompressor().decompress)
    return found


def _decompresses(data: bytes, decompressors: list) -> bool:
    """Is this a whole compressed stream in one of those formats? A truncated one is none."""
    for decompress in decompressors:
        with contextlib.suppress(Exception):
            decompress(data)
            return True
    return False


def _prune(folder: Path, limit: int) -> None:
    """Removes the cache's unreadable programs (a run killed while JAX wrote one leaves it
    truncated: JAX would warn on every later load and never write it again), then the oldest
    files while the folder holds more than `limit` bytes, down to half of it. JAX writes an
    entry once, so only those written since the last session began are read (`.checked`
    marks that time): 0.3 s for 1 400 entries, and the work stays that of one run."""
    marker = folder / ".checked"
    since = marker.stat().st_mtime - 1 if marker.exists() else -math.inf
    marker.touch()
    decompressors = _decompressors()
    for entry in folder.rglob("*-cache"):
        if entry.stat().st_mtime >= since and not _decompresses(entry.read_bytes(), decompressors):
            entry.unlink(missing_ok=True)
    files = [(f.stat(), f) for f in folder.rglob("*") if f.is_file() and f != marker]
    total = sum(stat.st_size for stat, _ in files)
    if total <= limit:
        return
    for stat, f in sorted(files, key=lambda t: t[0].st_mtime):
        if total <= limit // 2:
            break
        f.unlink(missing_ok=True)
        total -= stat.st_size


def _suite_cache() -> str:
    """The folder GOPHERNET_JAX_TEST_CACHE names; unset, the suite's cache kept between runs
    (pruned here), or where no such folder can be made, one for this session; `temp`, one for
    this session, removed at its end."""
    asked = os.environ.get("GOPHERNET_JAX_TEST_CACHE", "")
    if asked not in ("", "temp"):
        return asked  # named, or made by the process that started this one (a worker's)
    if not asked:
        home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        folder = home / "gophernet_jax" / "tests"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _prune(folder, TEST_CACHE_BYTES)
            return str(folder)
        except OSError:  # no writable home
            pass
    folder = tempfile.mkdtemp(prefix="gophernet-jax-test-cache-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


os.environ["GOPHERNET_JAX_TEST_CACHE"] = _suite_cache()
os.environ["XDG_CACHE_HOME"] = os.environ["GOPHERNET_JAX_TEST_CACHE"]


def pytest_configure(config):
    """In a process that runs tests (a worker, or pytest -n 0), JAX as the CLI sets it up,
    with the suite's cache: a program compiled by one test (in a subprocess or here) loads in
    the others."""
    if os.environ.get("PYTEST_XDIST_WORKER") or not config.getoption("numprocesses", None):
        from gophernet_jax import runtime
        from gophernet_jax.config import RuntimeConfig

        runtime.configure(ynn_fusion=False, compilation_cache=RuntimeConfig().cache_folder())


def pytest_unconfigure(config):
    """A worker's results are with the controller once it unconfigures; its interpreter then
    frees every program it loaded, which took 2–3 s a worker (its JAX backend and compiled
    programs; the controller waits for it). It leaves at once instead, unless coverage is
    measured (pytest-cov writes a worker's data at its exit)."""
    if os.environ.get("PYTEST_XDIST_WORKER") and "coverage" not in sys.modules:

        def leave() -> None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

        atexit.register(leave)  # registered last, so run first


def committed_kernels() -> bool:
    """Does this machine multiply matrices with the kernels the committed studies were made
    with? They were made on an AVX-512 CPU (x86-64), where XLA's CPU matrix product, oneDNN's
    sgemm, uses its AVX-512 kernels; a CPU without AVX-512, or `ONEDNN_MAX_CPU_ISA` set below
    it, rounds the products otherwise, and 300 epochs of chaos make that a different seed."""
    isa = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return platform.machine() == "x86_64" and " avx512f" in flags and (isa == "ALL" or "AVX512" in isa)


@pytest.fixture(scope="session")
def stats():
    """`scipy.stats`, for the tests that check a statistic against it: imported when such a
    test first runs, not at module level, where every worker would import it (0.5 s) while
    collecting the test files."""
    from scipy import stats

    return stats


@pytest.fixture(scope="session")
def article_data():
    """The article's train.csv and test.csv, without the padding row."""
    from gophernet_jax import load_split
    from gophernet_jax.config import DATA_DIR

    return load_split(DATA_DIR / "train.csv", DATA_DIR / "test.csv")


@pytest.fixture(scope="session")
def padded_data():
    """The same files as the reference loader reads them: one extra all-zero row each."""
    from gophernet_jax import load_split
    from gophernet_jax.config import DATA_DIR

    return load_split(DATA_DIR / "train.csv", DATA_DIR / "test.csv", padding_row=True)


@pytest.fixture
def x64():
    """Computes in float64 for the duration of one test."""
    import jax

    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True)
def strict_promotion():
    """Fail on silent dtype promotion inside the library."""
    import jax

    with jax.numpy_dtype_promotion("strict"):
        yield


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def strict_json(path) -> dict:
    """Reads a JSON file as a strict parser would: NaN and Infinity are not JSON (Python's
    `json.loads` accepts them unless told otherwise)."""

    def refuse(name: str):
        raise ValueError(f"{path}: {name} is not JSON")

    return json.loads(Path(path).read_text(), parse_constant=refuse)


@contextlib.contextmanager
def composing():
    """Hydra's composition of the project's config, its schema and resolvers registered:
    yields `compose(*overrides, **kwargs)` (`return_hydra_config=True` for the hydra node)."""
    from hydra import compose, initialize_config_dir

    from gophernet_jax.config import CONF_DIR, register

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        yield lambda *overrides, **kwargs: compose(config_name="config", overrides=list(overrides), **kwargs)


def settings_of(*overrides: str):
    """The validated config that `python -m gophernet_jax OVERRIDES` would run."""
    from gophernet_jax.config import validate

    with composing() as compose:
        return validate(compose(*overrides))


def assert_bad_setting(key: str, *overrides: str) -> None:
    """Validating `overrides` fails with one line (a `ConfigError`) that names `key`."""
    from gophernet_jax.config import ConfigError

    with pytest.raises(ConfigError, match=f"config key {key}") as error:
        settings_of(*overrides)
    assert "\n" not in str(error.value)


def run_job(folder: Path, *overrides: str, job_num: int | None = None) -> dict:
    """The CLI's job, in this process (no start-up, and programs compiled once per worker):
    trains, scores and writes `folder` as `python -m gophernet_jax` would. Returns the
    summary document (summary.json). With `job_num`, the folder is laid out as a multirun's
    job, for a sweep report."""
    from gophernet_jax import job

    _ran_end_to_end("run_job")
    folder.mkdir(parents=True, exist_ok=True)
    if job_num is not None:
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    return job.job(settings_of(*overrides), folder, job_num=job_num).to_json()


def synthetic_table(path: Path, rows: int = 100_000, features: int = 10, *, seed: int = 0) -> Path:
    """Writes a raw table of `rows` random features in [0, 1) (full float precision, about
    20 MB at the defaults) and a `class` column of three classes, a simple function of the
    features: the tercile of the first two features' sum. For timing the loader."""
    x = np.random.default_rng(seed).random((rows, features))
    labels = np.digitize(x[:, 0] + x[:, 1], [2 / 3, 4 / 3])
    names = np.array(["c0", "c1", "c2"])[labels]
    header = ",".join([*(f"f{i}" for i in range(features)), "class"])
    body = "\n".join(",".join([*map(repr, row.tolist()), name]) for row, name in zip(x, names))
    Path(path).write_text(f"{header}\n{body}\n")
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Running commands: the suite's one helper, and the `slow` marker's check


_starts: list[str] = []  # every process started by this worker, and every command run in it, in order
#: GOPHERNET_JAX_TEST_PROBE=FILE: each run of a command stops at once, and the tests (or
#: fixtures) that ran one are written to FILE: a quick way to find where `slow` belongs.
_PROBE = os.environ.get("GOPHERNET_JAX_TEST_PROBE")


class _Probed(Exception):
    pass


_testing: list[bool] = []  # non-empty while a test (or its set-up) runs


def _write_probe(item) -> None:
    """Under GOPHERNET_JAX_TEST_PROBE, notes that `item` ran a command."""
    with open(_PROBE, "a") as probe:
        probe.write(f"{item.nodeid}\n")


def _ran_end_to_end(what: str) -> None:
    _starts.append(f"end to end: {what}")
    if _PROBE and _testing:
        raise _Probed(what)


def _program(args) -> str:
    first = args[0] if args else "?"
    program = first[0] if isinstance(first, list | tuple) and first else first
    return os.fsdecode(program) if isinstance(program, bytes | str) else str(program)


def _counted(start, name: str):
    """`start`, counting the Python processes it starts (a library's helper tool, such as
    matplotlib's `fc-list` while it builds its font cache, is not one)."""

    def counted(*args, **kwargs):
        program = _program(args[1:] if name == "subprocess" else args)
        if name == "fork" or "python" in Path(program).name or program == sys.executable:
            _starts.append(f"{name} {program}")
            if _PROBE and _testing:
                raise _Probed(program)
        return start(*args, **kwargs)

    return counted


# Where Python starts processes: subprocess (Popen), multiprocessing's and loky's spawn
# (`_posixsubprocess.fork_exec`), and a bare fork.
subprocess.Popen._execute_child = _counted(subprocess.Popen._execute_child, "subprocess")
_posixsubprocess.fork_exec = _counted(_posixsubprocess.fork_exec, "spawn")
os.fork = _counted(os.fork, "fork")
_starting_fixtures: set[str] = set()  # fixtures whose set-up started a process


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    before = len(_starts)
    result = yield
    if len(_starts) > before:
        _starting_fixtures.add(fixturedef.argname)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    before = len(_starts)
    _testing.append(True)
    try:
        result = yield
    except _Probed:
        _write_probe(item)
        raise
    finally:
        _testing.clear()
    # joblib keeps its workers for the next sweep of this process: a test starts its own.
    loky = sys.modules.get("joblib.externals.loky.reusable_executor")
    if loky is not None and loky._executor is not None:
        loky._executor.shutdown(wait=True)
        loky._executor = None
    started = len(_starts) > before or bool(_starting_fixtures & set(item.fixturenames))
    slow = item.get_closest_marker("slow") is not None
    if _PROBE:
        if started:
            _write_probe(item)
        return result
    if started and not slow:
        pytest.fail(
            f"{item.nodeid} runs a command or starts a process ({_starts[-1]}): mark it slow", pytrace=False
        )
    if slow and not started:
        pytest.fail(f"{item.nodeid} is marked slow but runs no command: drop the mark", pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    """Under GOPHERNET_JAX_TEST_PROBE, a test whose fixture ran a command counts as running one."""
    _testing.append(True)
    try:
        return (yield)
    except _Probed:  # raised only under GOPHERNET_JAX_TEST_PROBE
        _write_probe(item)
        raise
    finally:
        _testing.clear()


class Done:
    """A finished command: its exit status, its output, and the folder it wrote (or None)."""

    def __init__(self, args, returncode: int, stdout: str, stderr: str, folder: Path | None = None):
        self.args, self.returncode, self.stdout, self.stderr = args, returncode, stdout, stderr
        self.dir = folder

    def __repr__(self) -> str:  # what pytest shows when an assertion on it fails
        return f"Done({self.args}, rc={self.returncode}, stdout={self.stdout!r}, stderr={self.stderr!r})"

    def results(self):
        import pandas as pd

        return pd.read_csv(self.dir / "results.csv")

    def summary(self) -> dict:
        return strict_json(self.dir / "summary.json")

    def lines(self) -> list[str]:
        """stderr's non-blank lines."""
        return [line for line in self.stderr.splitlines() if line.strip()]


def _in_process_main(module: str):
    """The function `python -m MODULE ARGS` runs, called with ARGS: returns an exit status."""
    if module == "gophernet_jax":
        from gophernet_jax import app

        def run(argv):
            sys.argv = ["gophernet_jax", *argv]  # Hydra reads its overrides there
            app.main()
            return 0

        return run
    if module == "gophernet_jax.predict":
        from gophernet_jax import predict

        return predict.main
    if module == "gophernet_jax.sweep":
        from gophernet_jax import sweep

        return sweep.main
    return None


def _run_in_process(main, argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """Runs `main(argv)` as its command would run: in `cwd`, with stdout and stderr
    captured, an uncaught exception printed as Python prints it (exit status 1), and this
    process's state (argv, folder, logging, JAX's cache settings, Hydra) put back after."""
    import traceback

    import jax
    from hydra.core.global_hydra import GlobalHydra

    from gophernet_jax import runtime

    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_cwd, saved_interrupt = sys.argv, os.getcwd(), runtime.on_interrupt
    saved_jax = {k: getattr(jax.config, k) for k in ("jax_compilation_cache_dir", "jax_enable_x64")}
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    # Hydra sets up logging with `logging.config.dictConfig`, which closes every handler
    # logging knows of: pytest's own among them. The run gets a registry of its own.
    saved_registry, saved_named = logging._handlerList[:], dict(logging._handlers)
    del logging._handlerList[:]
    code = 0
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            # The command runs with NumPy's promotion rules, not the suite's strict ones.
            with jax.numpy_dtype_promotion("standard"):
                try:
                    code = main(argv) or 0
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                    if not isinstance(e.code, int | None):
                        print(e.code, file=sys.stderr)
                except Exception:
                    traceback.print_exc()
                    code = 1
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
    finally:
        os.chdir(saved_cwd)
        sys.argv, runtime.on_interrupt = saved_argv, saved_interrupt
        for key, value in saved_jax.items():
            jax.config.update(key, value)
        for handler in root.handlers:
            if handler not in saved_handlers:
                with contextlib.suppress(Exception):
                    handler.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        logging._handlerList[:] = saved_registry
        logging._handlers.clear()
        logging._handlers.update(saved_named)
        GlobalHydra.instance().clear()
    return code, out.getvalue(), err.getvalue()


def command(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    process: bool = False,
    folder: Path | None = None,
) -> Done:
    """`python ARGS` run in `cwd`, as a user would from a shell: `-m MODULE ...` of this
    project runs in this process, unless `process` or an `env` asks for a process of its
    own; anything else (`-c CODE`, `-m pip`) always starts one. `folder` is what it writes."""
    cwd = Path(cwd)
    cwd.mkdir(parents=True, exist_ok=True)
    args = [str(a) for a in args]
    main = _in_process_main(args[1]) if len(args) > 1 and args[0] == "-m" else None
    if main is not None and not process and env is None:
        _ran_end_to_end(" ".join(args[:2]))
        code, stdout, stderr = _run_in_process(main, args[2:], cwd)
        return Done(args, code, stdout, stderr, folder)
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    return Done(args, done.returncode, done.stdout, done.stderr, folder)


def cli(
    cwd: Path,
    *overrides: str,
    run_dir: Path | None = None,
    sweep_dir: Path | None = None,
    env: dict[str, str] | None = None,
    process: bool = False,
    timeout: float = 300,
) -> Done:
    """`python -m gophernet_jax OVERRIDES` in `cwd`, writing its run to `run_dir` (default
    `cwd/run`) or, with `sweep_dir`, its multirun there (`hydra.sweep.dir`)."""
    if sweep_dir is not None:
        where, folder = f"hydra.sweep.dir={sweep_dir}", Path(sweep_dir)
    else:
        folder = Path(run_dir) if run_dir is not None else Path(cwd) / "run"
        where = f"hydra.run.dir={folder}"
    return command(
        "-m", "gophernet_jax", *overrides, where, cwd=cwd, env=env, process=process, timeout=timeout,
        folder=folder,
    )  # fmt: skip


def start(*args: str, cwd: Path, env: dict[str, str] | None = None, text: bool = True) -> subprocess.Popen:
    """Starts `python ARGS` in `cwd` in a process of its own and returns at once (for
    processes that run side by side, or that a test reads or signals), output piped."""
    Path(cwd).mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, *map(str, args)], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=text,
    )  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float = 300) -> Done:
    """Waits for a started process."""
    stdout, stderr = proc.communicate(timeout=timeout)
    return Done(proc.args, proc.returncode, stdout, stderr)


def assert_ok(done: Done) -> Done:
    """Exit status 0 and no traceback."""
    assert done.returncode == 0, done
    assert "Traceback" not in done.stdout + done.stderr, done
    return done


def assert_one_line_error(done: Done, *needles: str, status: int | None = None) -> str:
    """A non-zero exit (or `status`) with one line on stderr, no traceback, holding every needle."""
    assert done.returncode != 0 if status is None else done.returncode == status, done
    assert "Traceback" not in done.stdout + done.stderr, done
    lines = done.lines()
    assert len(lines) == 1, done
    for needle in needles:
        assert needle in lines[0], done
    return lines[0]
