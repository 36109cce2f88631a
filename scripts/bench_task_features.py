"""Seconds per training epoch of a downstream model with biLM features from the HDF5 cache vs the biLM on the fly,
measured in one run on the same data (the first N training examples of a recipe), plus the one-off cost of
building the cache. Ends with one JSON line.

    ELMOKIT_DATA=../shared/data python scripts/bench_task_features.py recipes/tasks/ewt-upos.yaml --examples 2000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="a recipe YAML with ELMo (e.g. recipes/tasks/ewt-upos.yaml)")
    ap.add_argument("--examples", type=int, default=2000, help="training examples to use")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)

    import torch

    from elmokit.tasks.train import load_task_config, train_task

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-features-"))
    results = {}
    try:
        for mode in ("cache", "on_the_fly"):
            cfg = load_task_config(
                args.config,
                [
                    f"out={work / mode}",
                    f"data.max_train={args.examples}",
                    "train.max_epochs=1",
                    f"train.features={mode}",
                    f"train.cache_dir={work / 'cache'}",
                    f"train.threads={args.threads}",
                    "train.progress=false",
                    "train.max_minutes=0",
                    *args.overrides,
                ],
            )
            t0 = time.time()
            s = train_task(cfg)
            results[mode] = {
                "seconds_per_epoch": s["seconds_per_epoch"],
                "cache_seconds": s["cache_seconds"],
                "total_seconds": time.time() - t0,
            }
            print(
                f"{mode:>10}: {s['seconds_per_epoch']:.1f} s per training epoch "
                f"(cache built in {s['cache_seconds']:.1f} s)",
                file=sys.stderr,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = results["on_the_fly"]["seconds_per_epoch"] / results["cache"]["seconds_per_epoch"]
    print(f"cached epochs are {ratio:.1f}x faster than on the fly", file=sys.stderr)
    print(
        json.dumps(
            {"examples": args.examples, "threads": args.threads, **results, "on_the_fly_over_cached_epoch": ratio}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
