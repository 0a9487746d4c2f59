"""Files: the atomic writers every results file goes through (CSV, JSON, bytes).

A reader, a resume or a crash never sees half a file: each is written beside its target
and renamed over it. Knows nothing of training, so any module may write through it.
"""

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def _write_atomic(path: Path, write, mode: str = "w") -> None:
    # Write beside the target, then rename: a reader never sees half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"newline": ""})) as f:
            write(f)
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_bytes(data: bytes, path: Path) -> None:
    """Writes `data` to `path` atomically."""
    _write_atomic(path, lambda f: f.write(data), mode="wb")


def write_csv(frame: "pd.DataFrame", path: Path) -> None:  # noqa: F821
    """Writes `frame` to `path` atomically, without its index."""
    _write_atomic(path, lambda f: frame.to_csv(f, index=False))


def _finite_or_null(data: Any) -> Any:
    # JSON has no NaN or Infinity; strict parsers (jq, JSON.parse) reject Python's.
    if isinstance(data, dict):
        return {k: _finite_or_null(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite_or_null(v) for v in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def write_json(data: Any, path: Path) -> None:
    """Writes `data` to `path` as indented, strict JSON (non-finite numbers become null), atomically."""
    text = json.dumps(_finite_or_null(data), indent=2, allow_nan=False)
    _write_atomic(path, lambda f: f.write(text + "\n"))
