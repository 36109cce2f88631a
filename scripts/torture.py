"""Kill `elmokit embed`, `elmokit pretrain` and `elmokit adapt` with SIGKILL at random moments, resume them, and
compare with uninterrupted runs.

    python scripts/torture.py                                   # 50 embed, 10 2-process embed, 20 pretrain, 10 adapt
    python scripts/torture.py --embed-runs 4 --pretrain-runs 2  # the CI version (tests/test_torture.py)
    python scripts/torture.py --embed-runs 0 --pretrain-runs 0 --adapt-runs 3   # adapt only (tests/test_torture.py)

Everything runs on `tiny` models this script trains first (a demo-grammar corpus, a 340-piece vocabulary, 40 steps
per direction) in --work (a temporary directory by default). Embed trials cycle over both layouts and two inputs:
one shorter than a chunk and one of several chunks (--chunk-lines 300 on 1,500 lines); pretrain trials over
`checkpoint_every` 1 and 4 (a kill is then often inside a checkpoint write). A trial: start the command, SIGKILL it
after a random fraction of the uninterrupted run's time (drawn again, up to 3 times, when the run had finished
first), and in a third of the trials kill the first resume too;
then resume until it exits. It counts as equal when the result matches the uninterrupted run exactly (every
sentence's vectors and `sentence_to_index`; the model's weights and every loss in metrics.jsonl).
Adapt trials (a 2,500-line text, 1 epoch: the plan, not the clock, ends the runs) kill the parent, one of its two
`pretrain` children, or all three, then run the same command again (a second kill first in a third of the trials);
equal means both LMs of the bundle and both runs' losses as in an uninterrupted adaptation, and, when the kill came
after the runs had started, the plan they finished with is the one `OUT.work/plan.json` held then (recorded before
they start, not timed again). `orphans_left` counts processes of a trial still running 3 s after its parent was
killed (each run must die with it).
Two-process embed trials (--embed-mp-runs; torchrun, each process one thread) SIGKILL one of the two workers at a
random moment (the launcher stops the other), then resume with 1 or 2 processes; equal means the same file as one
process writes, bit for bit.
`complete_but_corrupt` counts files under a final name that are not whole and right: an output that opens as
complete but differs or does not read, after any kill or resume.

Prints a table and one JSON line: embed_resumes_equal, embed_runs, embed_mp_resumes_equal, embed_mp_runs,
pretrain_resumes_equal, pretrain_runs,
adapt_resumes_equal, adapt_runs, adapt_plans_kept, orphans_left, complete_but_corrupt (and the kills that landed
before the command finished).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "elmokit.cli"]


def run(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=timeout)


def killed_run(args: list[str], after_s: float) -> bool:
    """Start the command and SIGKILL it after ``after_s`` seconds; True when the kill landed (it was running)."""
    p = subprocess.Popen(CLI + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        p.wait(timeout=after_s)
        return False  # finished first
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
        return True


def timed(args: list[str]) -> float:
    t = time.perf_counter()
    r = run(args)
    if r.returncode != 0:
        raise SystemExit(f"reference run failed: {' '.join(args)}\n{r.stderr[-2000:]}")
    return time.perf_counter() - t


# --- setup ---------------------------------------------------------------------------------------------------------
def setup(work: Path) -> dict:
    from elmokit.demo import write_corpus
    from elmokit.lm.vocab import train_vocab

    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    train = write_corpus(data / "train.txt", 2000, seed=1)
    valid = write_corpus(data / "valid.txt", 200, seed=2)
    train_vocab([str(train)], str(work / "vocab"), size=340, num_threads=1, command="torture")
    ov = [
        f"data.vocab={work / 'vocab.model'}",
        f"data.train={train}",
        f"data.valid={valid}",
        f"data.cache_dir={work / 'cache'}",
        "data.num_proc=1",
        "model.size=tiny",
        "train.batch_size=16",
        "train.bptt=20",
        "train.warmup_steps=5",
        "train.lr=0.005",
        "train.threads=1",
        "train.log_every=2",
        "train.eval_every=10",
        "train.eval_max_tokens=2000",
    ]
    for d in ("forward", "backward"):
        r = run(
            [
                "pretrain",
                "--direction",
                d,
                "--out",
                str(work / d),
                "--quiet",
                *ov,
                "train.max_steps=40",
                "train.checkpoint_every=0",
            ]
        )
        if r.returncode:
            raise SystemExit(r.stderr[-2000:])
    r = run(["bundle", str(work / "forward"), str(work / "backward"), "--out", str(work / "bilm")])
    if r.returncode:
        raise SystemExit(r.stderr[-2000:])
    inputs = {
        "under_one_chunk": write_corpus(data / "short.txt", 400, seed=3),
        "several_chunks": write_corpus(data / "long.txt", 1500, seed=4),
    }
    adapt_text = write_corpus(data / "adapt.txt", 2500, seed=5)
    return {"bilm": work / "bilm", "inputs": inputs, "overrides": ov, "adapt_text": adapt_text, "work": work}


# --- embed ---------------------------------------------------------------------------------------------------------
def embed_args(env: dict, inp: Path, out: Path, layout: str, chunks: str) -> list[str]:
    args = ["embed", str(env["bilm"]), str(inp), str(out), "--layout", layout, "--quiet", "--batch-tokens", "400"]
    return args + (["--chunk-lines", "300"] if chunks == "several_chunks" else [])


def same_embeddings(a: Path, b: Path) -> tuple[bool, bool]:
    """``(equal, complete)``: whether ``b`` equals the reference ``a`` in full, and whether it claims to be whole."""
    import numpy as np

    from elmokit.core.errors import ElmokitError
    from elmokit.embed.layouts import EmbeddingsFile

    try:
        fb = EmbeddingsFile(b)
    except ElmokitError:
        return False, False
    try:
        complete = bool(fb.attrs.get("complete"))
        with EmbeddingsFile(a) as fa:
            if len(fa) != len(fb) or fa.sentence_to_index() != fb.sentence_to_index():
                return False, complete
            return all(np.array_equal(fa[i], fb[i]) for i in range(len(fa))), complete
    except Exception:  # noqa: BLE001 - any read failure of a file that claims to be whole is a finding
        return False, True
    finally:
        fb.close()


def embed_trial(env: dict, ref: Path, ref_s: float, work: Path, layout: str, chunks: str, rng: random.Random) -> dict:
    out = work / "o.hdf5"
    shutil.rmtree(out.with_name(out.name + ".partial"), ignore_errors=True)
    out.unlink(missing_ok=True)
    args = embed_args(env, env["inputs"][chunks], out, layout, chunks)
    corrupt = 0
    kills = 0
    for _ in range(3):  # a kill that came after the run finished tests nothing: draw another moment
        kills = int(killed_run(args, rng.uniform(0.05, 0.9) * ref_s))
        if kills or not out.exists():
            break
        out.unlink()
    if kills and out.exists():  # a final name after a kill must be whole and right
        corrupt += not same_embeddings(ref, out)[0]
    if kills and rng.random() < 1 / 3 and not out.exists():
        kills += killed_run(args + ["--resume"], rng.uniform(0.05, 1.0) * ref_s)
        if out.exists():
            corrupt += not same_embeddings(ref, out)[0]
    if not out.exists():
        r = run(args + ["--resume"])
        if r.returncode:
            return {"equal": False, "corrupt": corrupt, "kills": kills, "error": r.stderr.strip()[-300:]}
    equal, complete = same_embeddings(ref, out)
    corrupt += complete and not equal
    return {"equal": equal, "corrupt": corrupt, "kills": kills}


# --- embed as 2 processes -------------------------------------------------------------------------------------------
def launch_two(args: list[str]) -> subprocess.Popen:
    """`elmokit ARGS` as 2 gloo processes under torchrun (the launcher is the returned process; its children are the
    workers)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen([*launcher, *CLI[1:], *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def embed_mp_trial(env: dict, ref: Path, ref_s: float, work: Path, layout: str, rng: random.Random) -> dict:
    """SIGKILL one random worker of a 2-process embed at a random moment (the launcher then stops the other), then
    --resume with 1 or 2 processes; equal means every sentence's vectors (and sentence_to_index) as in the one-process
    reference (each process runs one thread, as the reference does, so the vectors are bit for bit the same)."""
    out = work / "mp.hdf5"
    shutil.rmtree(out.with_name(out.name + ".partial"), ignore_errors=True)
    out.unlink(missing_ok=True)
    args = [*embed_args(env, env["inputs"]["several_chunks"], out, layout, "several_chunks"), "--threads", "1"]
    corrupt = kills = 0
    for _ in range(3):
        p = launch_two(args)
        started = time.time() + 60
        while p.poll() is None and len(children(p.pid)) < 2 and time.time() < started:
            time.sleep(0.02)  # the launcher starts its workers first
        deadline = time.time() + rng.uniform(0.05, 0.9) * ref_s / 2  # two processes: about half the reference
        while time.time() < deadline and p.poll() is None:
            time.sleep(0.02)
        workers = children(p.pid)
        if p.poll() is None and workers:
            with contextlib.suppress(OSError):
                os.kill(rng.choice(workers), signal.SIGKILL)
            kills = 1
        p.wait(timeout=300)
        if kills or not out.exists():
            break
        out.unlink()
    left = orphans(out)
    if kills and out.exists():
        corrupt += not same_embeddings(ref, out)[0]
    resumed_with = rng.choice([1, 2])
    if not out.exists():
        if resumed_with == 1:
            r = run([*args, "--resume"])
            failed = r.returncode != 0
        else:
            q = launch_two([*args, "--resume"])
            failed = q.wait(timeout=600) != 0
        if failed:
            return {"equal": False, "corrupt": corrupt, "kills": kills, "orphans": left, "error": "resume failed"}
    equal, complete = same_embeddings(ref, out)
    corrupt += complete and not equal
    return {"equal": equal, "corrupt": corrupt, "kills": kills, "orphans": left, "resumed_with": resumed_with}


# --- pretrain ------------------------------------------------------------------------------------------------------
def pretrain_args(env: dict, out: Path, every: int) -> list[str]:
    return [
        "pretrain",
        "--direction",
        "forward",
        "--out",
        str(out),
        "--quiet",
        *env["overrides"],
        "train.max_steps=30",
        f"train.checkpoint_every={every}",
        "train.keep_checkpoints=2",
    ]


def same_run(a: Path, b: Path) -> bool:
    import torch

    if not (b / "model" / "manifest.json").exists():
        return False
    wa = torch.load(a / "model" / "weights.pt", weights_only=True)
    wb = torch.load(b / "model" / "weights.pt", weights_only=True)
    if wa.keys() != wb.keys() or not all(torch.equal(wa[k], wb[k]) for k in wa):
        return False

    def losses(run: Path) -> list:
        recs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
        return [(r["step"], r["split"], r["loss"]) for r in recs]

    return losses(a) == losses(b)


def pretrain_trial(env: dict, refs: dict, work: Path, every: int, rng: random.Random) -> dict:
    out = work / "p"
    shutil.rmtree(out, ignore_errors=True)
    ref, ref_s = refs[every]
    args = pretrain_args(env, out, every)
    kills = 0
    for _ in range(3):  # a kill that came after the run finished tests nothing: draw another moment
        kills = int(killed_run(args, rng.uniform(0.15, 0.9) * ref_s))
        if kills:
            break
        shutil.rmtree(out, ignore_errors=True)
    if kills and rng.random() < 1 / 3 and not (out / "model").exists():
        kills += killed_run(args + ["--resume"], rng.uniform(0.15, 0.9) * ref_s)
    corrupt = 0
    if (out / "model").exists() and not (out / "checkpoints").exists():
        corrupt += not same_run(ref, out)
    if not (out / "model" / "manifest.json").exists() or kills:
        r = run(args + ["--resume"])
        if r.returncode and "holds a finished run" not in r.stderr:
            return {"equal": False, "corrupt": corrupt, "kills": kills, "error": r.stderr.strip()[-300:]}
    return {"equal": same_run(ref, out), "corrupt": corrupt, "kills": kills}


# --- adapt ---------------------------------------------------------------------------------------------------------
def adapt_args(env: dict, out: Path) -> list[str]:
    """An adaptation the plan ends (1 epoch, a budget far beyond it), so an uninterrupted one is the reference."""
    text, cache = str(env["adapt_text"]), str(env["work"] / "cache")
    return [
        "adapt",
        str(env["bilm"]),
        text,
        "--out",
        str(out),
        "--minutes",
        "30",
        "--epochs",
        "1",
        "--cache-dir",
        cache,
    ]


def proc_stat(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` after the command name (state, ppid, ...); None when the process is gone or a zombie."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields


def children(pid: int) -> list[int]:
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and (proc_stat(int(p.name)) or [0, 0])[1] == str(pid)
    ]


def processes_naming(out: Path) -> list[int]:
    """Live processes whose command line names ``out`` (the trial's --out, or its runs in ``out.work``)."""
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            try:
                cmdline = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            named = f" {out} " in f"{cmdline} " or f" {out}.work/" in cmdline
            if named and proc_stat(int(p.name)) is not None:
                found.append(int(p.name))
    return found


def orphans(out: Path) -> int:
    """Processes of the trial at ``out`` still running 3 s after its parent was killed (then killed here)."""
    deadline = time.time() + 3
    while processes_naming(out) and time.time() < deadline:
        time.sleep(0.05)
    left = processes_naming(out)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(left)


def killed_adapt(args: list[str], after_s: float, rng: random.Random) -> tuple[str, int, str | None]:
    """Start adapt, SIGKILL the parent, a child or all of them after ``after_s`` seconds; returns what was killed
    ("" when the command had ended first), the orphans left, and, when the runs had started, the plan in
    ``OUT.work/plan.json`` then ("" when there was none)."""
    out = Path(args[args.index("--out") + 1])
    p = subprocess.Popen(CLI + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        p.wait(timeout=after_s)
        return "", 0, None
    except subprocess.TimeoutExpired:
        pass
    kids = children(p.pid)
    plan = Path(f"{out}.work") / "plan.json"
    plan_then = (plan.read_text() if plan.exists() else "") if kids else None
    what = rng.choice(["parent", "child", "all"]) if kids else "parent"
    if what == "child":
        os.kill(rng.choice(kids), signal.SIGKILL)
        p.wait(timeout=600)  # the parent waits for the other run, then reports the failure
        return what, 0, plan_then
    p.send_signal(signal.SIGKILL)
    if what == "all":
        for k in kids:
            with contextlib.suppress(OSError):
                os.kill(k, signal.SIGKILL)
    p.wait()
    return what, orphans(out), plan_then


def same_adapt(a: Path, b: Path) -> bool:
    import torch

    if not (b / "manifest.json").exists():
        return False
    for d in ("forward", "backward"):
        wa = torch.load(a / d / "weights.pt", weights_only=True)
        wb = torch.load(b / d / "weights.pt", weights_only=True)
        if wa.keys() != wb.keys() or not all(torch.equal(wa[k], wb[k]) for k in wa):
            return False
        if not same_run(Path(f"{a}.work") / d, Path(f"{b}.work") / d):
            return False
    return True


def adapt_trial(env: dict, ref: Path, ref_s: float, work: Path, rng: random.Random) -> dict:
    out = work / "a"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(f"{out}.work", ignore_errors=True)
    args = adapt_args(env, out)
    what, left, corrupt, plan = "", 0, 0, None
    for attempt in range(3):  # a kill that came after the run finished tests nothing: draw another moment
        what, left, plan = killed_adapt(args, rng.uniform(0.1, 0.9) * ref_s, rng)
        if what or attempt == 2:
            break
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(f"{out}.work", ignore_errors=True)
    kills = int(bool(what))
    if kills and (out / "manifest.json").exists():  # a final name after a kill must be whole and right
        corrupt += not same_adapt(ref, out)
    if kills and rng.random() < 1 / 3 and not (out / "manifest.json").exists():
        again, more, plan2 = killed_adapt(args, rng.uniform(0.1, 0.9) * ref_s, rng)
        plan = plan if plan is not None else plan2
        kills += bool(again)
        left += more
        what = f"{what}, then {again}" if again else what
    error = ""
    if kills or not (out / "manifest.json").exists():  # the same command again, as its message advises
        r = run(args)
        if r.returncode and "already there" not in r.stderr:  # (the kill landed as the command ended)
            error = r.stderr.strip()[-300:]
    # the plan recorded before the runs started is the one they finished with (not a new timing after the kill)
    final_plan = Path(f"{out}.work") / "plan.json"
    kept = plan is None or (plan != "" and final_plan.exists() and final_plan.read_text() == plan)
    equal = same_adapt(ref, out) and kept
    result = {"equal": equal, "plan_kept": kept, "corrupt": corrupt, "kills": kills, "orphans": left, "killed": what}
    return {**result, "error": error} if error else result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--embed-runs", type=int, default=50)
    ap.add_argument("--pretrain-runs", type=int, default=20)
    ap.add_argument("--adapt-runs", type=int, default=10)
    ap.add_argument("--embed-mp-runs", type=int, default=10, help="trials killing one process of a 2-process embed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="working directory (default: a temporary one)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="elmokit-torture-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    env = setup(work)
    embed_cases = [(layout, chunks) for layout in ("allennlp", "packed") for chunks in env["inputs"]]
    refs = {}
    for layout, chunks in embed_cases if args.embed_runs else []:
        ref = work / f"ref-{layout}-{chunks}.hdf5"
        ref.unlink(missing_ok=True)
        refs[layout, chunks] = (ref, timed(embed_args(env, env["inputs"][chunks], ref, layout, chunks)))
    results = {"embed": [], "pretrain": [], "adapt": []}
    for i in range(args.embed_runs):
        layout, chunks = embed_cases[i % len(embed_cases)]
        r = embed_trial(env, *refs[layout, chunks], work, layout, chunks, rng)
        results["embed"].append({"case": f"embed {layout}, {chunks}", **r})
    results["embed_mp"] = []
    mp_refs = {}
    for layout in ("allennlp", "packed") if args.embed_mp_runs else ():
        ref = work / f"mpref-{layout}.hdf5"
        ref.unlink(missing_ok=True)
        ref_args = [*embed_args(env, env["inputs"]["several_chunks"], ref, layout, "several_chunks"), "--threads", "1"]
        mp_refs[layout] = (ref, timed(ref_args))
    for i in range(args.embed_mp_runs):
        layout = ("allennlp", "packed")[i % 2]
        r = embed_mp_trial(env, *mp_refs[layout], work, layout, rng)
        results["embed_mp"].append({"case": f"embed, 2 processes, {layout}", **r})
    prefs = {}
    for every in (1, 4) if args.pretrain_runs else ():
        ref = work / f"pref-{every}"
        shutil.rmtree(ref, ignore_errors=True)
        prefs[every] = (ref, timed(pretrain_args(env, ref, every)))
    for i in range(args.pretrain_runs):
        every = (1, 4)[i % 2]
        r = pretrain_trial(env, prefs, work, every, rng)
        results["pretrain"].append({"case": f"pretrain, checkpoint_every={every}", **r})
    if args.adapt_runs:
        aref = work / "aref"
        shutil.rmtree(aref, ignore_errors=True)
        shutil.rmtree(f"{aref}.work", ignore_errors=True)
        aref_s = timed(adapt_args(env, aref))
        for _ in range(args.adapt_runs):
            r = adapt_trial(env, aref, aref_s, work, rng)
            results["adapt"].append({"case": f"adapt, kill {r['killed'] or 'none (it ended first)'}", **r})

    trials = results["embed"] + results["embed_mp"] + results["pretrain"] + results["adapt"]
    cases: dict[str, list] = {}
    for r in trials:
        cases.setdefault(r["case"], []).append(r)
    print(f"{'case':<42} {'trials':>6} {'kills':>6} {'equal':>6} {'corrupt':>8}")
    for case, rs in cases.items():
        print(
            f"{case:<42} {len(rs):>6} {sum(r['kills'] for r in rs):>6} {sum(r['equal'] for r in rs):>6} "
            f"{sum(r['corrupt'] for r in rs):>8}"
        )
    for r in trials:
        if "error" in r:
            print(f"  {r['case']}: resume failed: {r['error']}")
    summary = {
        "embed_resumes_equal": sum(r["equal"] for r in results["embed"]),
        "embed_runs": len(results["embed"]),
        "pretrain_resumes_equal": sum(r["equal"] for r in results["pretrain"]),
        "pretrain_runs": len(results["pretrain"]),
        "adapt_resumes_equal": sum(r["equal"] for r in results["adapt"]),
        "adapt_runs": len(results["adapt"]),
        "adapt_plans_kept": sum(r["plan_kept"] for r in results["adapt"]),
        "embed_mp_resumes_equal": sum(r["equal"] for r in results["embed_mp"]),
        "embed_mp_runs": len(results["embed_mp"]),
        "orphans_left": sum(r["orphans"] for r in results["adapt"] + results["embed_mp"]),
        "complete_but_corrupt": sum(r["corrupt"] for r in trials),
        "kills_landed": sum(r["kills"] > 0 for r in trials),  # trials, of all
        "seed": args.seed,
        "minutes": round((time.time() - t0) / 60, 1),
    }
    print(json.dumps(summary))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
