"""Mean, spread and gain of downstream runs over seeds: ELMo runs against baseline runs (each OUT/results.json).

Prints a table (one row per run: seed, epochs, minutes, dev and test scores) and one JSON line with each side's mean,
sample standard deviation and range on dev and test, and the gain of the means.

    python scripts/seed_gain.py --elmo ~/elmokit-runs/ewt-upos-elmo-s1 ~/elmokit-runs/ewt-upos-elmo-s2 \
        --baseline ~/elmokit-runs/ewt-upos-base-s1 ~/elmokit-runs/ewt-upos-base-s2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import yaml


def read_run(run: str) -> dict:
    """One run's figures: seed and char CNN from its saved config, scores from its results.json."""
    d = Path(run).expanduser()
    res_path, cfg_path = d / "results.json", d / "model" / "config.yaml"
    if not res_path.is_file() or not cfg_path.is_file():
        print(f"{d}: no results.json or model/config.yaml; is the run finished?", file=sys.stderr)
        sys.exit(2)
    res = json.loads(res_path.read_text(encoding="utf-8"))
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    metric = "f1" if res.get("metric") == "span_f1" else "accuracy"
    return {
        "run": d.name,
        "seed": cfg["train"]["seed"],
        "use_elmo": res["use_elmo"],
        "char_dim": cfg["model"]["char_dim"],
        "epochs": res["epochs"],
        "best_step": res["best_step"],
        "minutes": round(res["train_minutes"], 1),
        "dev": res["dev"][metric],
        "test": res["test"][metric],
        "metric": metric,
    }


def stats(xs: list[float]) -> dict:
    return {
        "mean": round(statistics.fmean(xs), 2),
        "sd": round(statistics.stdev(xs), 2) if len(xs) > 1 else 0.0,
        "min": round(min(xs), 2),
        "max": round(max(xs), 2),
        "n": len(xs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--elmo", nargs="+", required=True, help="run folders of the model with ELMo")
    ap.add_argument("--baseline", nargs="+", required=True, help="run folders of the baseline")
    args = ap.parse_args()
    sides = {"elmo": [read_run(r) for r in args.elmo], "baseline": [read_run(r) for r in args.baseline]}
    print(f"{'side':<9} {'run':<34} {'seed':>4} {'char':>4} {'epochs':>6} {'min':>6} {'dev':>7} {'test':>7}")
    for side, rows in sides.items():
        for r in rows:
            print(
                f"{side:<9} {r['run']:<34} {r['seed']:>4} {r['char_dim']:>4} {r['epochs']:>6} {r['minutes']:>6}"
                f" {r['dev']:>7.2f} {r['test']:>7.2f}"
            )
    out = {side: {split: stats([r[split] for r in rows]) for split in ("dev", "test")} for side, rows in sides.items()}
    for side, s in out.items():
        print(
            f"{side:<9} mean (sd) over {s['test']['n']} seeds: dev {s['dev']['mean']:.2f} ({s['dev']['sd']:.2f}), "
            f"test {s['test']['mean']:.2f} ({s['test']['sd']:.2f})"
        )
    gain = {split: round(out["elmo"][split]["mean"] - out["baseline"][split]["mean"], 2) for split in ("dev", "test")}
    print(f"gain of the means: dev {gain['dev']:+.2f}, test {gain['test']:+.2f}")
    print(json.dumps({"runs": sides, **out, "gain": gain}))


if __name__ == "__main__":
    main()
