"""lsd._atomic: a replaced folder is never missing; output checks name the file in the way."""

from __future__ import annotations

import os

import pytest

from lsd._atomic import aside_path, atomic_dir, check_output_dir, remove_stale, replace_dir


def _folder(path, text):
    path.mkdir()
    (path / "f.txt").write_text(text)
    return path


def test_replace_dir_keeps_the_old_folder_until_the_new_one_is_in(tmp_path, monkeypatch):
    target = _folder(tmp_path / "target", "old")
    new = _folder(tmp_path / "new", "new")
    seen = []
    original = os.replace

    def watching(src, dst):  # at every rename, the old or the new folder holds the data
        seen.append(target.exists() or aside_path(target).exists())
        original(src, dst)
        seen.append((target / "f.txt").exists() or (aside_path(target) / "f.txt").exists())

    monkeypatch.setattr(os, "replace", watching)
    replace_dir(new, target)
    assert all(seen) and len(seen) == 4
    assert (target / "f.txt").read_text() == "new" and not aside_path(target).exists()


def test_a_kill_between_the_renames_is_settled_by_the_next_write(tmp_path):
    target = _folder(tmp_path / "target", "old")
    os.replace(target, aside_path(target))  # killed right after renaming the old folder aside
    remove_stale(tmp_path)
    assert (target / "f.txt").read_text() == "old"
    (tmp_path / ".target.tmp-dead").mkdir()  # a temporary folder of a killed write
    with atomic_dir(target) as tmp:
        (tmp / "f.txt").write_text("new")
    remove_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]
    assert (target / "f.txt").read_text() == "new"


def test_a_failed_write_leaves_the_target_untouched_and_nothing_behind(tmp_path):
    target = _folder(tmp_path / "target", "old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "f.txt").write_text("half")
        raise RuntimeError("disk full")
    assert (target / "f.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def test_check_output_dir_names_the_file_in_the_way(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"--output .*file is not a folder$"):
        check_output_dir(tmp_path / "file", "--output")
    with pytest.raises(NotADirectoryError, match=r"\(.*file is a file\)"):
        check_output_dir(tmp_path / "file" / "a" / "b", "--output")
    assert check_output_dir(tmp_path / "new" / "deep", "--output") == tmp_path / "new" / "deep"
    assert not (tmp_path / "new").exists()  # checks only
