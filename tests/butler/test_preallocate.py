"""butler.datastore.preallocate: fallocate(FALLOC_FL_KEEP_SIZE) on real files."""

from __future__ import annotations

import errno
import io
import os
import platform
import sys

import pytest

from butler.datastore.preallocate import preallocate

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux fallocate")
# Filesystems known to implement fallocate with FALLOC_FL_KEEP_SIZE.
PREALLOCATING = {"ext4", "xfs", "btrfs", "tmpfs", "f2fs", "bcachefs"}
MIB = 1 << 20


def _fs_type(path):
    """Return the type of the filesystem holding ``path`` (from /proc/self/mounts)."""
    best, kind = "", None
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            _, point, fstype, *_ = line.split()
            point = point.replace("\\040", " ")
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fstype
    return kind


@pytest.fixture
def preallocating_dir(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("preallocate only acts on Linux")
    kind = _fs_type(tmp_path)
    if kind not in PREALLOCATING:
        pytest.skip(f"{tmp_path} is on {kind}, which may not support fallocate")
    return tmp_path


def _blocks(stream):
    return os.fstat(stream.fileno()).st_blocks


def test_reserves_blocks_and_keeps_size(preallocating_dir):
    with open(preallocating_dir / "f", "wb") as stream:
        stream.write(b"abc")
        stream.flush()
        before = _blocks(stream)
        preallocate(stream, 4 * MIB)
        stat = os.fstat(stream.fileno())
        assert stat.st_size == 3  # FALLOC_FL_KEEP_SIZE
        assert stat.st_blocks * 512 >= 4 * MIB > before * 512
        assert stream.tell() == 3
        stream.write(b"defg")
    assert (preallocating_dir / "f").read_bytes() == b"abcdefg"


def test_reserves_from_position_or_offset(preallocating_dir):
    with open(preallocating_dir / "f", "wb") as stream:
        stream.write(b"x" * MIB)  # the first MiB is allocated already
        stream.flush()
        os.fsync(stream.fileno())
        written = _blocks(stream)
        assert written * 512 >= MIB
        stream.seek(2 * MIB)
        preallocate(stream, MIB)
        stat = os.fstat(stream.fileno())
        assert stat.st_size == MIB
        # From the position (2-3 MiB): a new MiB, not the first one again nor all 3 MiB.
        assert MIB <= (stat.st_blocks - written) * 512 < 2 * MIB
        preallocate(stream, MIB, 8 * MIB)
        stat = os.fstat(stream.fileno())
        assert stat.st_size == MIB and 2 * MIB <= (stat.st_blocks - written) * 512 < 3 * MIB
        assert stream.tell() == 2 * MIB


def test_reserving_blocks_already_reserved_adds_nothing(preallocating_dir):
    with open(preallocating_dir / "f", "wb") as stream:
        preallocate(stream, MIB, 0)
        once = _blocks(stream)
        preallocate(stream, MIB, 0)
        assert _blocks(stream) == once


@pytest.mark.parametrize("length", [0, -1, -MIB])
def test_no_length_is_a_no_op(preallocating_dir, length):
    with open(preallocating_dir / "f", "wb") as stream:
        preallocate(stream, length)
        preallocate(stream, length, 0)
        assert _blocks(stream) == 0
        assert os.fstat(stream.fileno()).st_size == 0


def test_in_memory_stream_is_a_no_op():
    buffer = io.BytesIO()
    preallocate(buffer, MIB)
    preallocate(buffer, MIB, 0)
    assert buffer.getvalue() == b"" and buffer.tell() == 0
    buffer.write(b"x")
    preallocate(buffer, MIB)
    assert buffer.getvalue() == b"x"


def test_object_without_file_descriptor_is_a_no_op():
    preallocate(object(), MIB)
    preallocate(io.StringIO("text"), MIB)


def test_closed_file_does_not_raise(tmp_path):
    stream = open(tmp_path / "f", "wb")
    stream.close()
    preallocate(stream, MIB)
    preallocate(stream, MIB, 0)
    assert (tmp_path / "f").stat().st_size == 0


@linux_only
def test_other_failures_are_ignored(tmp_path):
    # Real fallocate failures other than ENOSPC: a read-only descriptor (EBADF), a length
    # beyond the largest file size (EFBIG), a pipe (ESPIPE).
    path = tmp_path / "f"
    path.write_bytes(b"data")
    with open(path, "rb") as stream:
        preallocate(stream, MIB)
        assert _blocks(stream) * 512 < MIB
    with open(path, "ab") as stream:
        preallocate(stream, 1 << 62)
        preallocate(stream, 1 << 62, 1 << 62)
        assert os.fstat(stream.fileno()).st_size == 4
    read_fd, write_fd = os.pipe()
    with open(read_fd, "rb") as reader, open(write_fd, "wb", buffering=0) as writer:
        preallocate(writer, MIB)  # no position
        preallocate(writer, MIB, 0)
        writer.write(b"ok")
        assert reader.read(2) == b"ok"


def _kernel_at_least(major, minor):
    parts = platform.release().split(".")
    try:
        return (int(parts[0]), int(parts[1].split("-")[0])) >= (major, minor)
    except (IndexError, ValueError):
        return False


@linux_only
def test_full_disk_raises_enospc():
    # A real ENOSPC without mounting anything: tmpfs refuses at once (without allocating)
    # a fallocate longer than its whole size limit (Linux >= 3.5, shmem_fallocate).
    shm = "/dev/shm"
    if not os.path.isdir(shm) or _fs_type(shm) != "tmpfs" or not os.access(shm, os.W_OK):
        pytest.skip("no writable tmpfs at /dev/shm")
    stat = os.statvfs(shm)
    if not stat.f_blocks or not _kernel_at_least(3, 5):
        pytest.skip("/dev/shm has no size limit or the kernel is too old")
    too_much = 2 * stat.f_blocks * stat.f_frsize
    path = os.path.join(shm, f"preallocate-test-{os.getpid()}")
    try:
        with open(path, "wb") as stream:
            with pytest.raises(OSError) as info:
                preallocate(stream, too_much)
            assert info.value.errno == errno.ENOSPC
            assert str(too_much) in str(info.value)
            assert _blocks(stream) == 0 and os.fstat(stream.fileno()).st_size == 0
            preallocate(stream, MIB)  # a size that fits is fine
            assert _blocks(stream) * 512 >= MIB
    finally:
        os.remove(path)
