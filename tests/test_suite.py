"""The suite's own machinery: its compilation cache, kept between runs (tests/conftest.py)."""

import os
import zlib

import conftest


def test_the_suites_cache_drops_truncated_programs_then_the_oldest_files(tmp_path):
    whole = zlib.compress(b"a program" * 1000)
    (tmp_path / "jit_f-1-cache").write_bytes(whole)
    (tmp_path / "jit_g-2-cache").write_bytes(whole[: len(whole) // 2])  # a run killed mid-write
    conftest._prune(tmp_path, limit=10**6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jit_f-1-cache"]

    for age in range(10):  # 10 files of 100 bytes, the first the oldest; over a limit of 500
        (tmp_path / f"old{age}").write_bytes(bytes(100))
        os.utime(tmp_path / f"old{age}", (1000 + age, 1000 + age))
    (tmp_path / "jit_f-1-cache").unlink()
    conftest._prune(tmp_path, limit=500)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"old{age}" for age in (8, 9)]  # down to 250
