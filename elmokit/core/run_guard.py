"""What makes a run, and the checks that keep one: ``--resume`` continues the same run only, a finished run is not
replaced without ``--overwrite``, and the run's ``metrics.jsonl`` survives a kill in the middle of a line.

A run's *fingerprint* is its resolved config flattened to dotted keys (``model.hidden_size``), less the keys that may
change on resume (budget, logging, paths whose content is pinned by a hash instead), plus the hashes of what it
reads (vocabulary, token arrays). It is stored in every checkpoint; a resume whose fingerprint differs is refused
with the first differing key named.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from elmokit.core.errors import ConfigError


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (lists are values)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def fingerprint(config: dict, may_change: frozenset[str], extra: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``config`` that make the run (all but ``may_change``), and ``extra`` (hashes, derived sizes)."""
    flat = {k: v for k, v in flatten(config).items() if k not in may_change}
    return json.loads(json.dumps({**flat, **extra}))  # as it reads back from JSON (tuples → lists)


def check_same_run(checkpoint: Path, now: dict[str, Any], hint: str) -> None:
    """Refuse a resume whose fingerprint differs from the one stored in ``checkpoint/fingerprint.json``, naming the
    first differing key (checkpoints older than fingerprints have none: nothing to check).

    Args:
        checkpoint: the checkpoint directory (named in the message).
        now: this invocation's fingerprint.
        hint: what to do instead (e.g. "or start a new run with another --out").
    """
    stored = checkpoint / "fingerprint.json"
    if not stored.is_file():
        return
    before = json.loads(stored.read_text(encoding="utf-8"))
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            raise ConfigError(
                f"{checkpoint}: was made with {key}={_short(before.get(key))}, now "
                f"{_short(now.get(key))}; --resume continues the same run only: use the same value, "
                f"{hint}"
            )


def _short(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= 40 else s[:16] + "…" + s[-8:]


def check_fresh_out(out: Path, finished: bool, resumable: bool, resume: bool, overwrite: bool) -> None:
    """Refuse to start over a run directory that holds a finished model or checkpoints, unless asked.

    Args:
        out: the run directory.
        finished: it holds a finished model.
        resumable: it holds a checkpoint to resume.
        resume: ``--resume`` was given.
        overwrite: ``--overwrite`` was given.
    """
    if overwrite:
        return
    if finished and not (resume and resumable):
        more = " (or --resume to continue it from its checkpoint)" if resumable else ""
        raise ConfigError(
            f"{out}: holds a finished run (its model and metrics); pass --overwrite to train it "
            f"again{more}, or another --out"
        )
    if resumable and not resume:
        raise ConfigError(
            f"{out}: has checkpoints already; pass --resume to continue, --overwrite to start over, or another --out"
        )


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSONL log; a torn last line (a kill while it was written) is dropped.

    Raises:
        ConfigError: a bad line before the last (the file was edited or damaged), naming the line.
    """
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            if all(not rest.strip() for rest in lines[n:]):  # the last line: torn by a kill
                break
            raise ConfigError(
                f"{path}:{n}: not a JSON record; the log was damaged: repair or delete the line, then resume again"
            ) from None
    return out


def check_launch(num_processes: int) -> None:
    """Refuse ``accelerate launch --num_processes N`` without ``--multi_gpu``: accelerate's simple launcher then
    starts one process (setting ``MASTER_ADDR`` but no ``WORLD_SIZE``), which would train alone, silently."""
    import os

    launched = "ACCELERATE_MIXED_PRECISION" in os.environ and "MASTER_ADDR" in os.environ
    if launched and num_processes == 1 and "WORLD_SIZE" not in os.environ:
        raise ConfigError(
            "accelerate launch started one process although --num_processes asked for more: add "
            "--multi_gpu (without GPUs the processes train over gloo on the CPU), e.g. `accelerate "
            "launch --multi_gpu --num_processes 2 -m elmokit.cli pretrain ...`"
        )


def write_json_lines(path: Path, records: list[dict]) -> None:
    """Replace a JSONL file atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)


def remove_torn_dirs(run_dir: Path) -> None:
    """Temporary directories left by a kill inside a checkpoint or model write (never renamed, so never used)."""
    for parent in (run_dir, run_dir / "checkpoints"):
        if parent.is_dir():
            for p in parent.iterdir():
                if p.is_dir() and p.name.startswith(".") and ".tmp-" in p.name:
                    shutil.rmtree(p, ignore_errors=True)


class MetricsLog:
    """A run's append-only ``metrics.jsonl``, flushed per record.

    On resume it is cut back to what the checkpoint saw: its first ``keep`` records (the count the checkpoint
    stored, :attr:`lines`), or, for checkpoints that stored none, the records up to step ``keep_step``; a line
    torn by a kill goes too. Records written after the checkpoint (even at its own step, such as the final
    validation) are then written again, once.

    Args:
        path: the file.
        keep: records to keep (``None``: see ``keep_step``).
        keep_step: keep the records up to this step (``None`` and ``keep`` ``None``: start a new file).
    """

    def __init__(self, path: Path, keep: int | None = None, keep_step: int | None = None) -> None:
        from elmokit.core.errors import CheckpointError

        self.path = path
        self._error = CheckpointError
        records: list[dict] = []
        if path.exists() and (keep is not None or keep_step is not None):
            records = read_jsonl(path)
            records = records[:keep] if keep is not None else [r for r in records if r["step"] <= keep_step]
        write_json_lines(path, records)
        self.lines = len(records)
        self.f = open(path, "a", encoding="utf-8")

    def write(self, rec: dict) -> None:
        try:
            self.f.write(json.dumps(rec) + "\n")
            self.f.flush()
        except OSError as e:
            raise self._error(
                f"{self.path}: cannot write ({e.strerror or e}); free space, then continue from the "
                f"last checkpoint with --resume"
            ) from None
        self.lines += 1

    def close(self) -> None:
        self.f.close()


# --- one live writer per run directory; children that die with their parent -----------------------------------------
_HELD: dict[Path, Any] = {}  # lock file -> its open file (the lock lives as long as the file stays open)


def _lock_file(run_dir: Path, rank: int) -> Path:
    return run_dir.resolve() / (".lock" if rank == 0 else f".lock-{rank}")


def hold_run_lock(run_dir: Path, rank: int = 0, who: str = "elmokit process") -> None:
    """Make this process the run directory's only live writer: an exclusive ``fcntl.flock`` on ``run_dir/.lock``
    (``.lock-RANK`` for the other processes of a multi-process run, so siblings never conflict while a second run of
    any size is refused by the rank it shares), held until this process ends (or :func:`release_run_lock`); the
    kernel drops it when the process dies, even by SIGKILL, so a killed run never leaves a stale lock. Taking a lock
    this process already holds is a no-op (a run resumed in the same process). Creates ``run_dir``. Where the
    filesystem cannot lock (or off POSIX) nothing is held.

    Raises:
        ConfigError: another live process holds it (its pid named).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = _lock_file(run_dir, rank)
    if path in _HELD:
        return
    try:
        import fcntl
    except ImportError:  # not POSIX
        return
    f = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        import errno

        f.seek(0)
        pid = f.read().strip()
        f.close()
        if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            return  # a filesystem without locks: run unguarded rather than not at all
        raise ConfigError(
            f"{run_dir}: another {who}{f' (pid {pid})' if pid.isdigit() else ''} is writing into it now; wait "
            f"for it to end or stop it, then run again (it resumes), or give another --out"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    _HELD[path] = f


def release_run_lock(run_dir: Path, rank: int = 0) -> None:
    """Drop the lock :func:`hold_run_lock` took on ``run_dir`` (nothing when this process holds none)."""
    f = _HELD.pop(_lock_file(run_dir, rank), None)
    if f is not None:
        f.close()


def die_with_parent(parent: int) -> None:
    """Make this process die with its parent ``parent`` (a pid): on Linux the kernel sends it SIGKILL when the parent
    dies (``prctl(PR_SET_PDEATHSIG)``), elsewhere a daemon thread checks the parent every second. If the parent
    died before this call (the process was then handed to another), exit at once."""
    import signal
    import sys

    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    else:
        import threading
        import time

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:
        os._exit(1)
