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
