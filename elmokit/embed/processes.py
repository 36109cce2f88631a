"""The processes of one ``elmokit embed`` job: started by ``torchrun`` or ``accelerate launch`` (or one process on
its own), each knows its rank, shares a nonce that names this launch's signal files, and claims the input's chunks
one at a time, in input order, as it comes to them: whichever process is free takes the next chunk, so the work
balances itself by time (long or short sentences, a slower device, and the main process's merging, which it does
between its own chunks while the others embed).

Coordination goes through files in ``OUTPUT.partial/`` (a filesystem every process sees, as for pretraining on
several machines), not through collective calls, so that no process can wait forever on one that failed:

- ``ready-NONCE``: the main process has prepared the directory (a resumed journal read and consolidated) and
  claimed chunk 0 when it is to do (part 0 holds the file's attributes); the others start once they see it.
- ``claim-NONCE-CHUNK``: this chunk is being embedded by the process that created the file (exclusive creation:
  exactly one process gets it).
- ``done-NONCE-RANK``: a process other than the main one has written its share.
- ``error-NONCE-RANK.txt``: a process stopped with this one-line error; every other process stops with the same
  line at its next chunk (or while it waits), and the launcher sees them all fail.

The only collective call is the broadcast of the nonce at the start, when every process is alive.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from elmokit.core.errors import ElmokitError

POLL_SECONDS = 0.2


@dataclass
class Processes:
    """This process's place in the job: ``rank`` of ``world`` processes, and ``nonce`` naming this launch."""

    rank: int = 0
    world: int = 1
    nonce: str = ""

    @property
    def main(self) -> bool:
        return self.rank == 0


def this_job() -> Processes:
    """The processes a launcher started (``WORLD_SIZE`` > 1: accelerate's process group, gloo on the CPU, NCCL on
    GPUs; the nonce broadcast from the main process), or this one process alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes()
    import uuid

    import torch
    import torch.distributed as dist
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # gloo among CPU processes
    box = [uuid.uuid4().hex[:12] if state.is_main_process else ""]
    dist.broadcast_object_list(box, src=0)
    return Processes(state.process_index, state.num_processes, box[0])


class Signals:
    """The signal files of one launch in ``directory`` (see the module docstring)."""

    def __init__(self, directory: Path, procs: Processes) -> None:
        self.dir, self.procs = directory, procs
        self.claimed: set[int] = set()  # the chunks this process claimed

    def claim(self, chunk: int) -> bool:
        """Take ``chunk`` for this process, unless another process of this launch has it (one process alone takes
        every chunk). A chunk this process claimed before is still its own."""
        if self.procs.world > 1 and chunk not in self.claimed:
            try:
                os.close(os.open(self.dir / f"claim-{self.procs.nonce}-{chunk}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return False
        self.claimed.add(chunk)
        return True

    def _error_files(self) -> list[Path]:
        return sorted(self.dir.glob(f"error-{self.procs.nonce}-*.txt")) if self.dir.is_dir() else []

    def report(self, message: str) -> None:
        """Leave this process's one-line error for the others (best effort: a full disk may refuse it too)."""
        if self.procs.world == 1 or not self.dir.is_dir():
            return  # before the main process made the directory, the launcher stops the others when this one fails
        try:
            (self.dir / f"error-{self.procs.nonce}-{self.procs.rank}.txt").write_text(message, encoding="utf-8")
        except OSError:
            pass

    def check(self) -> None:
        """Raise the first error another process of this launch reported."""
        for f in self._error_files():
            rank = f.stem.rsplit("-", 1)[-1]
            if rank != str(self.procs.rank):
                message = f.read_text(encoding="utf-8").strip()
                raise ElmokitError(f"{message} (process {rank} stopped; the other processes stop too)")

    def ready(self) -> None:
        """The main process: the directory is prepared."""
        if self.procs.world > 1:
            (self.dir / f"ready-{self.procs.nonce}").touch()

    def wait_ready(self) -> None:
        """The other processes: wait until the main process prepared the directory (or reported an error)."""
        while not (self.dir / f"ready-{self.procs.nonce}").exists():
            self.check()
            time.sleep(POLL_SECONDS)

    def wait_until(self, done: Callable[[], bool]) -> None:
        """Wait until ``done()`` (polled), stopping with another process's error."""
        while not done():
            self.check()
            time.sleep(POLL_SECONDS)

    def finished(self) -> None:
        """A process other than the main one: its share is written."""
        if self.procs.world > 1:
            (self.dir / f"done-{self.procs.nonce}-{self.procs.rank}").touch()

    def all_finished(self) -> bool:
        """Whether every process other than the main one has written its share."""
        return all((self.dir / f"done-{self.procs.nonce}-{r}").exists() for r in range(1, self.procs.world))

    def clear_stale(self) -> None:
        """The main process, preparing: remove the signal files of earlier launches."""
        for pattern in ("ready-*", "error-*.txt", "done-*", "claim-*"):
            for f in self.dir.glob(pattern):
                if self.procs.nonce not in f.name or not self.procs.nonce:
                    f.unlink(missing_ok=True)
