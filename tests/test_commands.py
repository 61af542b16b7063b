"""``common.commands``: the atomic writes every command's files go through."""

import os
import stat

import pytest

from common.commands import copy_atomic, replace_atomic, write_text_atomic


@pytest.fixture
def umask():
    """Set the process's umask for one test, restored after it."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_get_the_permissions_of_a_plain_open(umask, tmp_path):
    umask(0o022)
    table = write_text_atomic(tmp_path / "out/table.md", "| a |\n")
    copied = copy_atomic(table, tmp_path / "out/copy.json")
    with open(tmp_path / "plain.txt", "w"):
        pass
    assert mode(table) == mode(copied) == mode(tmp_path / "plain.txt") == 0o644
    assert copied.read_text() == "| a |\n"
    umask(0o077)  # the umask decides, as for any file
    assert mode(write_text_atomic(tmp_path / "private.md", "x")) == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "table.md"
    path.write_text("the committed table\n")

    def fail_half_way(file):
        file.write(b"half a ta")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomic(path, fail_half_way)
    assert path.read_text() == "the committed table\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]
