"""Tests for repro.atomic: readers never see a half-written file."""
import pytest

from repro import atomic

def test_atomic_write_replaces_content_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "file.json"
    atomic.atomic_write(target, b"first")
    assert target.read_bytes() == b"first"
    atomic.atomic_write(target, b"second, longer content")
    assert target.read_bytes() == b"second, longer content"
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]
    assert (target.stat().st_mode & 0o777) == 0o644


def test_atomic_write_failure_keeps_old_content(tmp_path):
    target = tmp_path / "f.bin"
    atomic.atomic_write(target, b"old")
    with pytest.raises(TypeError):
        atomic.atomic_write(target, "not bytes")  # write fails part-way
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]



def test_atomic_path_failure_inside_the_block_keeps_old_file(tmp_path):
    target = tmp_path / "results.nc"
    atomic.atomic_write(target, b"complete old file")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            open(tmp, "wb").write(b"half of the new")
            raise RuntimeError("killed while writing")
    assert target.read_bytes() == b"complete old file"
    assert [p.name for p in tmp_path.iterdir()] == ["results.nc"]
