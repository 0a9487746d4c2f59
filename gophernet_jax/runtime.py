"""Process-wide settings: XLA flags and the compilation cache (applied before JAX starts),
output to a closed pipe, and Ctrl-C while compiled code runs."""

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import jax
import jaxlib

#: Turns off every XLA CPU library fusion of YNNPACK, which this jaxlib applies by default.
#: With them off the seeds-last trainer ran 1.5-2.5x faster here (see README). The empty
#: list also turns off YNNPACK's single dots, which `-dot,-eltwise,-reduce` left on: with
#: those, a seed's numbers depended on the width of its chunk, and so on the device count.
YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type="
YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"

#: XLA splits the CPU into this many host devices; the population trainer gives each its
#: own seeds (`jax.shard_map`), which uses the cores better than XLA's threads do alone.
DEVICE_FLAG = "--xla_force_host_platform_device_count"


def _ynn_flag_known() -> bool:
    # XLA aborts on an unknown flag: only name it to the release it was measured with.
    return tuple(int(p) for p in jaxlib.__version__.split(".")[:2]) == (0, 10)


def _backend_started() -> bool:
    from jax._src import xla_bridge  # no public way to ask; flags are read at start-up

    return xla_bridge.backends_are_initialized()


def _flag_values(flags: list[str], name: str) -> list[str]:
    """The values given to `name` in `flags` (XLA_FLAGS split on spaces), in order."""
    return [f.partition("=")[2] for f in flags if f.partition("=")[0] == name]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def host_device_count(host_devices: str | int) -> int:
    """The number of host devices `runtime.host_devices` asks for: "auto" is every usable core
    (`usable_cores`), an integer >= 1 is itself."""
    if host_devices == "auto":
        return usable_cores()
    if isinstance(host_devices, int) and not isinstance(host_devices, bool) and host_devices >= 1:
        return host_devices
    raise ValueError(f"runtime.host_devices: expected 'auto' or an integer >= 1, got {host_devices!r}")


def _configure_ynn(ynn_fusion: bool) -> None:
    flags = os.environ.get("XLA_FLAGS", "").split()
    if not _ynn_flag_known() or ynn_fusion != (YNN_OFF in flags):
        return
    if _backend_started():
        state = "on" if YNN_OFF not in flags else "off"
        print(f"note: XLA started with YNN fusion {state}; runtime.ynn_fusion applies to new processes",
              file=sys.stderr)  # fmt: skip
    else:
        flags = [f for f in flags if f != YNN_OFF] if ynn_fusion else [*flags, YNN_OFF]
        os.environ["XLA_FLAGS"] = " ".join(flags)


def _configure_host_devices(host_devices: str | int) -> None:
    flags = os.environ.get("XLA_FLAGS", "").split()
    named = _flag_values(flags, DEVICE_FLAG)
    if host_devices == "auto" and named:  # XLA_FLAGS (the user's, or set on import) decides
        return
    wanted = host_device_count(host_devices)
    if _backend_started():
        started = len(jax.devices("cpu"))
        if started != wanted:
            print(f"note: JAX started with {started} CPU devices; runtime.host_devices={host_devices} "
                  "applies to new processes", file=sys.stderr)  # fmt: skip
        return
    if host_devices == "auto" and wanted == 1:
        return  # one core: leave XLA_FLAGS as it was
    flags = [f for f in flags if f.partition("=")[0] != DEVICE_FLAG] + [f"{DEVICE_FLAG}={wanted}"]
    os.environ["XLA_FLAGS"] = " ".join(flags)


def configure(
    ynn_fusion: bool, compilation_cache: str | None = None, host_devices: str | int = "auto"
) -> None:
    """Applies `runtime.ynn_fusion`, `runtime.compilation_cache` and `runtime.host_devices`.

    XLA reads its flags once, when JAX's backend starts, so `ynn_fusion` and `host_devices`
    take effect only before the first computation; later, a choice that differs from what
    XLA started with is reported on stderr. Importing `gophernet_jax` already applies the
    defaults (`configure_on_import`), so that the API and the CLI compute alike.

    Args:
      ynn_fusion: leave XLA's experimental YNNPACK fusions on (the default turns them off).
      compilation_cache: a folder for JAX's persistent compilation cache, or None.
      host_devices: how many host devices XLA splits the CPU into: "auto" (every usable
        core, unless XLA_FLAGS already names `--xla_force_host_platform_device_count`)
        or an integer >= 1, which replaces what XLA_FLAGS says. 1 turns the split off.
    """
    host_device_count(host_devices)  # fail on a bad value whether or not it can apply
    _configure_ynn(ynn_fusion)
    _configure_host_devices(host_devices)
    if compilation_cache:
        jax.config.update("jax_compilation_cache_dir", compilation_cache)
        # The default skips programs compiled in under a second, which is most of ours.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def configure_on_import() -> None:
    """The package's defaults, for whatever XLA_FLAGS does not already say: YNN fusion off,
    and one host device per usable core (`runtime.host_devices=auto`)."""
    if YNN_FLAG not in os.environ.get("XLA_FLAGS", ""):
        _configure_ynn(ynn_fusion=False)
    _configure_host_devices("auto")


class CompileCounter:
    """Counts XLA compilations (and their seconds) while in scope, through jax.monitoring.

    A program the persistent compilation cache already holds is loaded, not compiled: JAX
    still reports it as a backend compile, so a cache hit just before is counted apart
    (`cache_hits`).
    """

    def __enter__(self) -> "CompileCounter":
        self.count, self.seconds = 0, 0.0
        self.cache_hits = 0
        self._hit = False
        jax.monitoring.register_event_listener(self._event)
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def _event(self, event: str, **kwargs: Any) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            self._hit = True

    def _listen(self, event: str, duration: float, **kwargs: Any) -> None:
        if event != "/jax/core/compile/backend_compile_duration":
            return
        if self._hit:
            self.cache_hits += 1
        else:
            self.count, self.seconds = self.count + 1, self.seconds + duration
        self._hit = False

    def __exit__(self, *exc: object) -> None:
        jax.monitoring.unregister_event_duration_listener(self._listen)
        jax.monitoring.unregister_event_listener(self._event)


class _ClosedPipeGuard:
    """A text stream that outlives its reader: once a write or flush meets a closed pipe
    (`| head`), the stream's descriptor is pointed at /dev/null and later output is dropped,
    so the run goes on to write its files instead of printing logging's tracebacks."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def _drop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def quiet_closed_pipes() -> None:
    """Makes stdout and stderr drop output once their reader has gone (`_ClosedPipeGuard`).

    Called by the command before Hydra sets up logging, whose handlers then write through
    the guards. The exit status stays that of the run: a reader that stops reading does not
    make a finished run a failed one.
    """
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _ClosedPipeGuard):
            setattr(sys, name, _ClosedPipeGuard(stream))


#: Called from a watcher thread on Ctrl-C inside `prompt_interrupt`; it must end the
#: process (`os._exit`). None: Ctrl-C raises KeyboardInterrupt as usual.
on_interrupt: Callable[[], None] | None = None


@contextlib.contextmanager
def prompt_interrupt() -> Iterator[None]:
    """Lets Ctrl-C end the process while the main thread waits on compiled code.

    Python raises KeyboardInterrupt in the main thread only once it runs Python again, so
    Ctrl-C during training would wait for all of it. Inside this context, with an
    `on_interrupt` set, SIGINT wakes a watcher thread (`signal.set_wakeup_fd`) that calls
    it at once. Nothing is written to files inside the context, so there is nothing to
    leave half-written. Outside the main thread, or with no `on_interrupt`, it does nothing.
    """
    handler = on_interrupt
    if handler is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    lock, closed = threading.Lock(), threading.Event()

    def watch() -> None:
        with reader, contextlib.suppress(OSError):
            while data := reader.recv(64):  # b"" once the context has closed its end
                if signal.SIGINT in data:
                    with lock:
                        if not closed.is_set():
                            handler()

    previous = signal.set_wakeup_fd(writer.fileno())
    threading.Thread(target=watch, name="interrupt", daemon=True).start()
    try:
        yield
    finally:
        with lock:  # a watcher already handling Ctrl-C holds it until the process ends
            closed.set()
        signal.set_wakeup_fd(previous)
        writer.close()
