"""The suite's own machinery: its compilation cache, kept between runs (tests/conftest.py)."""

import os
import zlib

import conftest


def test_the_suites_cache_drops_truncated_programs_then_the_oldest_files(tmp_path):
    whole = zlib.compress(b"a program" * 1000)
    (tmp_path / "jit_f-1-cache").write_bytes(whole)
    (tmp_path / "jit_g-2-cache").write_bytes(whole[: len(whole) // 2])  # a run killed mid-write
    conftest._prune(tmp_path, limit=10**6)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".checked", "jit_f-1-cache"]

    # Later sessions read only what was written since the one before began.
    os.utime(tmp_path / ".checked", (5000, 5000))
    (tmp_path / "jit_h-3-cache").write_bytes(whole[:10])  # written since: read, dropped
    (tmp_path / "jit_i-4-cache").write_bytes(whole[:10])
    os.utime(tmp_path / "jit_i-4-cache", (4000, 4000))  # written before: not read again
    conftest._prune(tmp_path, limit=10**6)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".checked", "jit_f-1-cache", "jit_i-4-cache"]

    for age in range(10):  # 10 files of 100 bytes, the first the oldest; over a limit of 500
        (tmp_path / f"old{age}").write_bytes(bytes(100))
        os.utime(tmp_path / f"old{age}", (1000 + age, 1000 + age))
    (tmp_path / "jit_f-1-cache").unlink()
    (tmp_path / "jit_i-4-cache").unlink()
    conftest._prune(tmp_path, limit=500)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".checked", "old8", "old9"]  # down to 250
