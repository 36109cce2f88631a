"""`elmokit embed` as N processes: their claims, their signals, and the file they write (the same as one process's),
also after a kill and a `--resume` with another N."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from elmokit.core.errors import ElmokitError
from elmokit.embed import Embedder
from elmokit.embed.processes import Processes, Signals
from elmokit.embed.writer import write_hdf5
from tests.lm.test_pretrain import accelerate_launch, free_port

WORDS = "the a cat dogs sees runs quickly river bird sings old happy 고양이가 책을 본다 .".split()


@pytest.fixture(scope="module")
def lines_file(tmp_path_factory):
    rng = random.Random(3)
    p = tmp_path_factory.mktemp("mp") / "in.txt"
    p.write_text("".join(" ".join(rng.choices(WORDS, k=rng.randint(0, 30))) + "\n" for _ in range(460)), "utf-8")
    return p


def test_every_chunk_is_claimed_by_exactly_one_process(tmp_path):
    """Processes claiming the same chunks at the same time (threads here, as processes race on a shared disk):
    each chunk goes to one of them, and a claim stays its claimer's."""
    import threading

    d = tmp_path / "o.hdf5.partial"
    d.mkdir()
    sigs = [Signals(d, Processes(r, 4, "n")) for r in range(4)]
    start = threading.Barrier(4)

    def claim_all(sig: Signals) -> None:
        start.wait()
        for c in range(300):
            sig.claim(c)

    threads = [threading.Thread(target=claim_all, args=(s,)) for s in sigs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = sorted(c for s in sigs for c in s.claimed)
    assert got == list(range(300))  # every chunk once
    owner = next(s for s in sigs if 7 in s.claimed)
    assert owner.claim(7) and not any(s.claim(7) for s in sigs if s is not owner)


def test_a_claim_belongs_to_its_launch_and_one_process_takes_every_chunk(tmp_path):
    d = tmp_path / "o.hdf5.partial"
    d.mkdir()
    assert Signals(d, Processes(0, 2, "old")).claim(3)
    assert not Signals(d, Processes(1, 2, "old")).claim(3)
    new = Signals(d, Processes(0, 2, "new"))
    new.clear_stale()  # the main process of the next launch removes the killed launch's claims
    assert not list(d.glob("claim-old-*"))
    assert new.claim(3) and not Signals(d, Processes(1, 2, "new")).claim(3)
    alone = Signals(tmp_path / "nowhere", Processes())
    assert all(alone.claim(c) for c in range(5))  # no files: there is nobody to share with


def test_a_process_stops_with_the_line_another_reported(tmp_path):
    d = tmp_path / "o.hdf5.partial"
    d.mkdir()
    one, two = Processes(0, 2, "abc"), Processes(1, 2, "abc")
    Signals(d, two).report(f"{tmp_path}/o.hdf5: cannot write (No space left on device)")
    Signals(d, two).check()  # its own report is not another's
    with pytest.raises(ElmokitError, match="No space left on device.*process 1 stopped"):
        Signals(d, one).check()
    with pytest.raises(ElmokitError, match="process 1 stopped"):
        Signals(d, one).wait_until(lambda: False)  # a waiting process stops too, not forever
    Signals(d, Processes(0, 2, "new")).check()  # an earlier launch's error is not this one's


def test_every_process_reads_the_same_parts_as_done(tiny_pair, lines_file, tmp_path):
    """Each process journals its parts in its own file, the main one too: a process that reads ``journal.jsonl``
    late sees the parts the main one saw when it prepared, so neither skips a chunk the other one does not think
    done. (When the main one appended to ``journal.jsonl``, a slow process also saw its first new part as done, took
    another share, and a chunk was left to nobody: the main process waited for it forever.)"""
    from elmokit.embed.layouts import Partial
    from elmokit.embed.writer import _options

    emb = Embedder(tiny_pair["bundle"], batch_tokens=64)
    out = tmp_path / "o.hdf5"
    write_hdf5(emb, lines_file, out, chunk_lines=50, progress=False, stop_after_chunks=2)
    write_hdf5(emb, lines_file, out, chunk_lines=50, progress=False, stop_after_chunks=1, resume=True)
    opts = _options(emb, lines_file, "all", "allennlp", "float32", False, 50)
    late = Partial(out, opts, rank=1)
    late.load()
    assert sorted(late.parts) == [0, 1]  # as prepared by the second run, not its chunk 2
    assert write_hdf5(emb, lines_file, out, chunk_lines=50, progress=False, resume=True) == out


def test_the_main_process_stops_when_every_other_finished_and_a_chunk_is_missing(tmp_path):
    d = tmp_path / "o.hdf5.partial"
    d.mkdir()
    main, other = Signals(d, Processes(0, 3, "n")), Signals(d, Processes(1, 3, "n"))
    assert not main.all_finished()
    other.finished()
    assert not main.all_finished()
    Signals(d, Processes(2, 3, "n")).finished()
    assert main.all_finished()


def assert_same_file(a, b, atol: float = 1e-6) -> None:
    """Every dataset and attribute of ``a`` in ``b`` and nothing more, values within ``atol``."""
    with h5py.File(a, "r") as x, h5py.File(b, "r") as y:
        assert set(x.keys()) == set(y.keys())
        assert dict(x.attrs).keys() == dict(y.attrs).keys()
        for k in x.attrs:
            assert str(x.attrs[k]) == str(y.attrs[k]), k
        for k in x.keys():
            u, v = x[k][()], y[k][()]
            if k == "sentence_to_index":
                assert u[0] == v[0]
                continue
            assert u.shape == v.shape and u.dtype == v.dtype, k
            if u.size:
                assert float(np.abs(u.astype(np.float64) - v).max()) <= atol, k


def launch(n: int, bundle, inp, out, *extra: str, how: str = "torchrun") -> subprocess.Popen:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    cli = ["-m", "elmokit.cli", "embed", str(bundle), str(inp), str(out), "--quiet", "--threads", "1", *extra]
    if n == 1:
        cmd = [sys.executable, *cli]
    elif how == "torchrun":
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(n),
            "--master_port",
            str(free_port()),
            *cli,
        ]
    else:
        cmd = [*accelerate_launch(n), *cli]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def finish(p: subprocess.Popen, timeout: float) -> str:
    """``p``'s output once it exits; past ``timeout`` its whole process group is killed (no worker outlives a
    failed test) and the test fails."""
    try:
        return p.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        log = p.communicate()[0]
        raise AssertionError(f"still running after {timeout:.0f} s: {log[-3000:]}") from None


def run(n: int, *args, **kw) -> str:
    p = launch(n, *args, **kw)
    log = finish(p, 300)
    assert p.returncode == 0, log[-3000:]
    return log


@pytest.mark.slow
@pytest.mark.parametrize(("layout", "how"), [("allennlp", "torchrun"), ("packed", "accelerate")])
def test_two_gloo_processes_write_the_file_one_writes(tiny_pair, lines_file, tmp_path, layout, how):
    args = ("--layout", layout, "--chunk-lines", "40")
    run(1, tiny_pair["bundle"], lines_file, tmp_path / "one.hdf5", *args)
    log = run(2, tiny_pair["bundle"], lines_file, tmp_path / "two.hdf5", *args, how=how)
    assert "wrote" in log and "Traceback" not in log
    assert_same_file(tmp_path / "one.hdf5", tmp_path / "two.hdf5")
    assert not (tmp_path / "two.hdf5.partial").exists()


@pytest.mark.slow
def test_a_killed_process_of_two_then_resume_with_one_or_two(tiny_pair, lines_file, tmp_path):
    """SIGKILL to one random process of a 2-process embed (the launcher then stops the other), then --resume with
    1 or 2 processes: the file equals the uninterrupted one; no file with the final name ever appears early."""
    run(1, tiny_pair["bundle"], lines_file, tmp_path / "one.hdf5", "--chunk-lines", "20")
    rng = random.Random(7)
    resumed = 0
    for trial, resume_n in enumerate([1, 2, 2]):
        out = tmp_path / f"t{trial}.hdf5"
        p = launch(2, tiny_pair["bundle"], lines_file, out, "--chunk-lines", "20")
        parts = out.with_name(out.name + ".partial")
        deadline = time.time() + 120
        while time.time() < deadline and len(list(parts.glob("part-*.h5"))) < rng.randint(1, 6):
            assert not out.exists()
            time.sleep(0.05)
        workers = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
        if workers:
            os.kill(int(rng.choice(workers)), signal.SIGKILL)
        finish(p, 120)
        if out.exists():  # it finished before the kill: nothing to resume
            continue
        assert parts.is_dir() and any(parts.glob("part-*.h5"))
        run(resume_n, tiny_pair["bundle"], lines_file, out, "--chunk-lines", "20", "--resume")
        assert_same_file(tmp_path / "one.hdf5", out)
        resumed += 1
    assert resumed >= 2  # the kills landed mid-run
