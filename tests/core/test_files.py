"""Durable files (issue 34): a manifest's ``files`` is a map of names inside its directory to sha256 sums (nothing
outside is read or hashed), and a directory swap killed half-way is put right by the next run."""

import hashlib
import json
import os
import subprocess

import pytest

import elmokit.core.files as F
from elmokit.core.errors import CheckpointError
from elmokit.core.files import atomic_dir, commit_dir, read_manifest, recover_dir, verify_files


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def _model(d, files=None, **extra):
    """A directory with a.txt and sub/b.txt and a manifest listing them (or ``files``)."""
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_bytes(b"a")
    (d / "sub" / "b.txt").write_bytes(b"b")
    files = {"a.txt": _sha(b"a"), "sub/b.txt": _sha(b"b")} if files is None else files
    (d / "manifest.json").write_text(json.dumps({"format": "fmt", "files": files, **extra}))
    return d


def test_a_good_manifest_reads(tmp_path):
    d = _model(tmp_path / "m")
    (d / "inner-link.txt").symlink_to(d / "a.txt")  # a link that stays inside is fine
    m = json.loads((d / "manifest.json").read_text())
    m["files"]["inner-link.txt"] = _sha(b"a")
    (d / "manifest.json").write_text(json.dumps(m))
    assert read_manifest(d, "fmt", "a thing")["files"]["sub/b.txt"] == _sha(b"b")


@pytest.mark.parametrize(
    "files, says",
    [
        ("missing", "lists no files"),
        ({}, "lists no files"),
        (["a.txt"], "'files' must map"),
        ("a.txt", "'files' must map"),
        ({"a.txt": 5}, "'a.txt'"),
        ({"a.txt": "abc"}, "'a.txt'"),
        ({"a.txt": _sha(b"a").upper() + "0"}, "'a.txt'"),
    ],
)
def test_a_manifest_without_sha256_entries_is_one_line(tmp_path, files, says):
    """Case 13: (was: AttributeError on a list, and nothing checked at all without ``files``)."""
    d = _model(tmp_path / "m", files={} if files == "missing" else files)
    if files == "missing":
        m = json.loads((d / "manifest.json").read_text())
        del m["files"]
        (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="manifest.json") as e:
        read_manifest(d, "fmt", "a thing")
    assert says in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text", ["[1, 2]", '"fmt"', "null"])
def test_a_manifest_that_is_not_an_object_is_one_line(tmp_path, text):
    d = _model(tmp_path / "m")
    (d / "manifest.json").write_text(text)
    with pytest.raises(CheckpointError, match="manifest.json: not a JSON object"):
        read_manifest(d, "fmt", "a thing")


@pytest.mark.parametrize("kind", ["dotdot", "nested-dotdot", "absolute", "link-out", "dir-link-out", "empty", "dot"])
def test_manifest_paths_stay_inside(tmp_path, monkeypatch, kind):
    """Case 16: `../outside.txt`, `/etc/hostname`, a link out: refused before anything outside is read or hashed."""
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "x.txt").write_bytes(b"secret")
    d = _model(tmp_path / "m")
    name = {
        "dotdot": "../outside.txt",
        "nested-dotdot": "sub/../../outside.txt",
        "absolute": str(outside),
        "link-out": "link.txt",
        "dir-link-out": "out/x.txt",
        "empty": "",
        "dot": ".",
    }[kind]
    if kind == "link-out":
        (d / "link.txt").symlink_to(outside)
    if kind == "dir-link-out":
        (d / "out").symlink_to(tmp_path / "outdir", target_is_directory=True)
    m = json.loads((d / "manifest.json").read_text())
    m["files"][name] = _sha(b"secret")
    (d / "manifest.json").write_text(json.dumps(m))
    hashed = []
    real = F.sha256_file
    monkeypatch.setattr(F, "sha256_file", lambda p: hashed.append(p) or real(p))
    with pytest.raises(CheckpointError, match="manifest.json") as e:
        verify_files(d, m)
    assert repr(name) in str(e.value) and "\n" not in str(e.value)
    assert all(os.path.realpath(p).startswith(str(d.resolve()) + os.sep) for p in hashed), hashed


def test_a_failed_second_rename_puts_the_old_directory_back(tmp_path, monkeypatch):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    tmp = atomic_dir(final)
    (tmp / "new.txt").write_text("new")
    real = os.replace

    def replace(src, dst):
        if str(src) == str(tmp):
            raise OSError(5, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        commit_dir(tmp, final)
    assert (final / "old.txt").read_text() == "old" and sorted(os.listdir(tmp_path)) == ["out"]


def _killed_state(tmp_path, final_in: bool):
    """What `commit_dir` leaves when killed between its renames (``final_in`` False) or after them (True)."""
    final = tmp_path / "out"
    final.mkdir()
    (final / "v.txt").write_text("old")
    dead = _dead_pid()
    os.replace(final, tmp_path / f".out.old-{dead}")
    (tmp_path / f".out.tmp-{dead}-x1y2z3").mkdir()  # another killed run's half-written temporary
    if final_in:
        final.mkdir()
        (final / "v.txt").write_text("new")
    return final


@pytest.mark.parametrize("final_in", [False, True])
@pytest.mark.parametrize("via", ["atomic_dir", "recover_dir"])
def test_a_killed_swap_is_finished_by_the_next_writer(tmp_path, final_in, via):
    """Case 18: the old directory comes back when the final name is missing, or goes when the new one is in; a
    killed run's temporary goes."""
    final = _killed_state(tmp_path, final_in)
    if via == "atomic_dir":
        tmp = atomic_dir(final)
        assert tmp.name.startswith(f".out.tmp-{os.getpid()}-")
        tmp.rmdir()
    else:
        recover_dir(final)
    assert (final / "v.txt").read_text() == ("new" if final_in else "old")
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_killed_swap_is_finished_by_the_next_reader(tmp_path):
    final = _model(tmp_path / "out")
    dead = _dead_pid()
    os.replace(final, tmp_path / f".out.old-{dead}")
    assert read_manifest(final, "fmt", "a thing")["format"] == "fmt"
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_live_writers_directories_are_left_alone(tmp_path):
    """Only directories whose process is gone are touched: a concurrent writer's (alive) are not."""
    final = tmp_path / "out"
    live = [f".out.tmp-{os.getpid()}-aaaa", f".out.tmp-{os.getppid()}-bbbb", f".out.old-{os.getppid()}"]
    for n in live:
        (tmp_path / n).mkdir()
    recover_dir(final)  # the final name is missing, but the old one belongs to a live process: not restored
    assert sorted(os.listdir(tmp_path)) == sorted(live)
    other = tmp_path / ".other.tmp-1-x"  # another name's directories are not this one's business
    other.mkdir()
    recover_dir(final)
    assert other.is_dir()
