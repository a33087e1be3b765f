"""Result files are written whole or not at all (``foundation.atomic``), and a failed write says which file."""
from __future__ import annotations

import errno

import pytest

from foundation.atomic import append_jsonl, atomic_write


def test_a_failed_result_write_names_the_result_file_not_a_temp_file(tmp_path):
    target = tmp_path / "report.md"

    def full_disk(handle):
        raise OSError(errno.ENOSPC, "No space left on device")  # a write's error names no file

    with pytest.raises(OSError) as raised:
        atomic_write(target, full_disk)
    assert raised.value.filename == str(target) and raised.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # and no temp file is left
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OSError) as raised:
        append_jsonl(tmp_path / "a-file" / "epochs.jsonl", {})
    assert raised.value.filename == str(tmp_path / "a-file" / "epochs.jsonl")
