"""Process-wide settings applied before JAX starts: XLA flags and the compilation cache."""

import os
import sys
from typing import Any

import jax
import jaxlib

#: Turns off XLA's experimental CPU library fusion (YNNPACK), which this jaxlib applies by
#: default; with it off the seeds-last trainer ran 1.5-2.5x faster here (see README).
YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type=-dot,-eltwise,-reduce"


def _ynn_flag_known() -> bool:
    # XLA aborts on an unknown flag: only name it to the release it was measured with.
    return tuple(int(p) for p in jaxlib.__version__.split(".")[:2]) == (0, 10)


def _backend_started() -> bool:
    from jax._src import xla_bridge  # no public way to ask; flags are read at start-up

    return xla_bridge.backends_are_initialized()


def configure(ynn_fusion: bool, compilation_cache: str | None = None) -> None:
    """Applies `runtime.ynn_fusion` and `runtime.compilation_cache`.

    XLA reads its flags once, when JAX's backend starts, so the choice takes effect only
    before the first computation; later it says so if the choice differs. Importing
    `gophernet_jax` already turns the fusion off (unless XLA_FLAGS names it), so that the
    API and the CLI compute the same numbers.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if _ynn_flag_known() and (ynn_fusion == (YNN_OFF in flags)):
        if _backend_started():
            state = "on" if YNN_OFF not in flags else "off"
            print(f"note: XLA started with YNN fusion {state}; runtime.ynn_fusion applies to new processes",
                  file=sys.stderr)  # fmt: skip
        else:
            os.environ["XLA_FLAGS"] = (
                flags.replace(YNN_OFF, "").strip() if ynn_fusion else f"{flags} {YNN_OFF}".strip()
            )
    if compilation_cache:
        jax.config.update("jax_compilation_cache_dir", compilation_cache)
        # The default skips programs compiled in under a second, which is most of ours.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def configure_on_import() -> None:
    """The package's default: YNN fusion off, unless XLA_FLAGS already says something about it."""
    if "ynn_fusion" not in os.environ.get("XLA_FLAGS", ""):
        configure(ynn_fusion=False)


class CompileCounter:
    """Counts XLA compilations (and their seconds) while in scope, through jax.monitoring."""

    def __enter__(self) -> "CompileCounter":
        self.count, self.seconds = 0, 0.0
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def _listen(self, event: str, duration: float, **kwargs: Any) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            self.count, self.seconds = self.count + 1, self.seconds + duration

    def __exit__(self, *exc: object) -> None:
        jax.monitoring.unregister_event_duration_listener(self._listen)
