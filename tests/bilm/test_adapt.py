"""elmokit adapt keeps what is not its own, resumes after a kill with the plan it recorded, takes its runs down with it,
starts them whatever the current directory holds, and reports the steps they did; a run directory takes one writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import elmokit.bilm.adapt as adapt_mod
from elmokit.cli import main
from elmokit.core.errors import ElmokitError
from elmokit.demo import write_corpus

LINUX = sys.platform.startswith("linux")


@pytest.fixture()
def text(tmp_path) -> Path:
    return write_corpus(tmp_path / "text.txt", 600, seed=21)


def adapt_cli(bilm, text, out, *more) -> list[str]:
    cache = Path(out).parent / "cache"
    return ["adapt", str(bilm), str(text), "--out", str(out), "--cache-dir", str(cache), *more]


def one_line_refusal(res, *words) -> None:
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: ") and len(res.output.strip().splitlines()) == 1, res.output
    assert "Traceback" not in res.output
    for w in words:
        assert w in res.output, res.output


def test_adapt_refuses_an_out_it_did_not_make(tiny_pair, text, tmp_path):
    """Case 1: a folder of the user's files (even with --overwrite), a biLM adapt did not make there (even with
    --overwrite), a file, the biLM being adapted itself, an OUT.work of other files: one line, exit 2, all kept."""
    from elmokit.bilm.bundle import write_bundle

    bilm = tiny_pair["bundle"]
    fast = ("--minutes", "0.01", "--epochs", "1")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own words\n")
    for more in ((), ("--overwrite",)):
        res = CliRunner().invoke(main, adapt_cli(bilm, text, mine, *fast, *more))
        one_line_refusal(res, str(mine), "not an adapted biLM", "another --out")
        assert (mine / "notes.txt").read_text() == "my own words\n"
    other = write_bundle(tiny_pair["forward"], tiny_pair["backward"], tmp_path / "other")
    before = sorted(p.name for p in other.iterdir())
    res = CliRunner().invoke(main, adapt_cli(bilm, text, other, *fast, "--overwrite"))
    one_line_refusal(res, "did not make")
    assert sorted(p.name for p in other.iterdir()) == before
    afile = tmp_path / "a-file"
    afile.write_text("x")
    one_line_refusal(CliRunner().invoke(main, adapt_cli(bilm, text, afile, *fast)), "a file")
    assert afile.read_text() == "x"
    one_line_refusal(CliRunner().invoke(main, adapt_cli(bilm, text, bilm, *fast, "--overwrite")), "being adapted")
    one_line_refusal(CliRunner().invoke(main, adapt_cli(bilm, text, bilm.parent, *fast)), "being adapted")
    assert (bilm / "manifest.json").is_file()
    (tmp_path / "new.work").mkdir()
    (tmp_path / "new.work" / "keep.txt").write_text("k")
    one_line_refusal(CliRunner().invoke(main, adapt_cli(bilm, text, tmp_path / "new", *fast)), "not written by")
    assert not (tmp_path / "new").exists() and (tmp_path / "new.work" / "keep.txt").read_text() == "k"


def test_adapt_records_its_plan_before_the_runs_and_resumes_with_it(tiny_pair, text, tmp_path, monkeypatch):
    """Case 4: the plan is in OUT.work/plan.json before any run starts; the same command after a kill uses it
    again, whatever a new timing would say (no new timing is made); other options then are refused by name."""
    timings, configs, recorded = [0.01, 0.5], [], []

    def timed(*a, **k):
        return timings.pop(0)

    def killed(work, config, *rest):
        plan = work / "plan.json"  # recorded before the runs start
        configs.append(yaml.safe_load(Path(config).read_text())["train"]["max_steps"])
        recorded.append(json.loads(plan.read_text())["steps"] if plan.is_file() else None)
        raise KeyboardInterrupt  # the kill

    monkeypatch.setattr(adapt_mod, "seconds_per_step", timed)
    monkeypatch.setattr(adapt_mod, "run_directions", killed)
    lines = text.read_text().splitlines()
    out = tmp_path / "adapted"
    kw = {"minutes": 1.0, "epochs": 1000, "cache_dir": str(tmp_path / "cache"), "progress": False}
    for _ in range(2):
        with pytest.raises(KeyboardInterrupt):
            adapt_mod.adapt(str(tiny_pair["bundle"]), lines, str(out), **kw)
    assert configs[0] == int(0.85 * 60 / 0.01)  # the budget binds, so another timing would plan another length
    assert configs == [configs[0], configs[0]] and timings == [0.5]  # measured once, reused on the rerun
    assert recorded == configs
    (tmp_path / "adapted.work" / "forward").mkdir()  # a run has started
    with pytest.raises(ElmokitError, match=r"a different --minutes \(1.0 then, 2.0 now\).*--overwrite"):
        adapt_mod.adapt(str(tiny_pair["bundle"]), lines, str(out), **{**kw, "minutes": 2.0})
    with pytest.raises(ElmokitError, match=r"a different text \(FILE...\)"):
        adapt_mod.adapt(str(tiny_pair["bundle"]), lines[:-40], str(out), **kw)


def test_adapt_runs_from_a_directory_holding_an_elmokit_folder_and_reports_the_steps_done(
    tiny_pair, text, tmp_path, monkeypatch
):
    """Case 6: the children do not import ./elmokit. Case 7: adapt.json reports the steps each run did (here the
    runs' time budget ends them long before the planned schedule). A finished adaptation then needs --overwrite."""
    shadow = tmp_path / "cwd" / "elmokit"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('the elmokit folder of the current directory')\n")
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(adapt_mod, "seconds_per_step", lambda *a, **k: 1e-4)  # plans ~10,000 steps
    out = tmp_path / "adapted"
    res = CliRunner().invoke(main, adapt_cli(tiny_pair["bundle"], text, out, "--minutes", "0.02", "--epochs", "1000"))
    assert res.exit_code == 0, res.output + (tmp_path / "adapted.work" / "forward.log").read_text()
    r = json.loads((tmp_path / "adapted.work" / "adapt.json").read_text())
    for d in ("forward", "backward"):
        summary = json.loads((out / d / "manifest.json").read_text())["summary"]
        assert r["steps"][d] == summary["steps"] and r["stopped_by"][d] == summary["stopped_by"] == "time budget"
        assert 0 < r["steps"][d] < r["planned_steps"] == int(0.85 * 0.02 * 60 / 1e-4)
    assert f"{r['steps']['forward']} forward and {r['steps']['backward']} backward steps" in res.output
    res = CliRunner().invoke(main, adapt_cli(tiny_pair["bundle"], text, out, "--minutes", "0.02", "--epochs", "1000"))
    one_line_refusal(res, "already there", "--overwrite")


def pretrain_cmd(out: Path, overrides: list[str]) -> list[str]:
    return ["pretrain", "--direction", "forward", "--out", str(out), "--quiet", *overrides]


def test_pretrain_refuses_a_second_live_writer(tiny_overrides, tmp_path):
    """Case 5: a run directory takes one live writer (a lock the kernel drops when the writer dies, even by
    SIGKILL); a second pretrain into it gets one line, with or without --resume."""
    run = tmp_path / "run"
    ov = [*tiny_overrides, "train.checkpoint_every=0", "train.eval_every=0"]
    first = subprocess.Popen(
        [sys.executable, "-m", "elmokit.cli", *pretrain_cmd(run, [*ov, "train.max_steps=1000000"])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while not (run / "metrics.jsonl").exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read()
        for more in ((), ("--resume",)):
            res = CliRunner().invoke(main, [*pretrain_cmd(run, [*ov, "train.max_steps=2"]), *more])
            one_line_refusal(res, str(run), f"another elmokit pretrain (pid {first.pid}) is writing")
    finally:
        first.kill()
        first.wait()
    res = CliRunner().invoke(main, pretrain_cmd(run, [*ov, "train.max_steps=2"]))  # no lock left by the kill
    assert res.exit_code == 0, res.output


def test_adapt_refuses_a_second_live_adapt(tiny_pair, text, tmp_path):
    work = tmp_path / "adapted.work"
    work.mkdir()
    (work / adapt_mod.MARKER).touch()
    code = (
        "import sys, time; from pathlib import Path; from elmokit.core.run_guard import hold_run_lock; "
        "hold_run_lock(Path(sys.argv[1]), 0, 'elmokit adapt'); print('held', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(work)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = CliRunner().invoke(main, adapt_cli(tiny_pair["bundle"], text, tmp_path / "adapted", "--minutes", "0.01"))
        one_line_refusal(res, f"another elmokit adapt (pid {holder.pid}) is writing")
    finally:
        holder.kill()
        holder.wait()


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (from /proc)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(p.name))
    return out


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_a_killed_adapt_takes_its_runs_down_and_the_same_command_resumes(tiny_pair, text, tmp_path):
    """Cases 4 and 5 for real: SIGKILL of adapt while both pretrain children run kills them too; the same command
    then finishes with the plan recorded before the kill; --overwrite adapts again with a new plan."""
    out = tmp_path / "adapted"
    cmd = [
        sys.executable,
        "-m",
        "elmokit.cli",
        *adapt_cli(tiny_pair["bundle"], text, out, "--minutes", "5", "--epochs", "1"),
    ]
    parent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids: list[int] = []
    try:
        deadline = time.time() + 180
        while len(kids) < 2 and parent.poll() is None and time.time() < deadline:
            kids = children_of(parent.pid)
            time.sleep(0.02)
        assert len(kids) == 2, "the runs did not start"
        plan_file = tmp_path / "adapted.work" / "plan.json"
        plan = plan_file.read_text() if plan_file.is_file() else None  # recorded before the runs started
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 3
        while any(alive(k) for k in kids) and time.time() < deadline:
            time.sleep(0.05)
        assert not any(alive(k) for k in kids), "a pretrain child outlived adapt"
        for d in ("forward", "backward"):  # killed with it, not finished since
            assert not (tmp_path / "adapted.work" / d / "model").exists(), f"the {d} run went on after adapt's kill"
    finally:
        parent.kill()
        for k in kids:
            if alive(k):
                os.kill(k, signal.SIGKILL)
    assert plan is not None, "the runs started before the plan was recorded"
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "adapted.work" / "plan.json").read_text() == plan  # the same plan, not a new timing
    r = json.loads((tmp_path / "adapted.work" / "adapt.json").read_text())
    assert r["planned_steps"] == json.loads(plan)["steps"] and (out / "manifest.json").is_file()
    res = subprocess.run([*cmd, "--overwrite"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "adapted.work" / "plan.json").read_text() != plan  # timed again: a new adaptation
