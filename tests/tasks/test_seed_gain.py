"""scripts/seed_gain.py: mean, spread and gain over seeds, read from finished runs' results.json."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

SCRIPT = Path(__file__).parents[2] / "scripts" / "seed_gain.py"


def fake_run(root: Path, name: str, seed: int, use_elmo: bool, dev: float, test: float) -> str:
    d = root / name
    (d / "model").mkdir(parents=True)
    (d / "model" / "config.yaml").write_text(yaml.safe_dump({"train": {"seed": seed}, "model": {"char_dim": 30}}))
    (d / "results.json").write_text(
        json.dumps(
            {
                "metric": "accuracy",
                "use_elmo": use_elmo,
                "epochs": 3,
                "best_step": 9,
                "train_minutes": 1.5,
                "dev": {"accuracy": dev},
                "test": {"accuracy": test},
            }
        )
    )
    return str(d)


def test_mean_spread_and_gain(tmp_path):
    elmo = [fake_run(tmp_path, "e1", 1, True, 95.0, 95.5), fake_run(tmp_path, "e2", 2, True, 95.2, 95.1)]
    base = [fake_run(tmp_path, "b1", 1, False, 94.0, 94.0), fake_run(tmp_path, "b2", 2, False, 94.4, 94.2)]
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--elmo", *elmo, "--baseline", *base], capture_output=True, text=True, check=True
    ).stdout
    r = json.loads(out.strip().splitlines()[-1])
    assert r["elmo"]["test"]["mean"] == 95.3 and r["baseline"]["test"]["mean"] == 94.1
    assert r["elmo"]["test"]["sd"] == 0.28 and r["baseline"]["dev"]["min"] == 94.0
    assert r["gain"] == {"dev": 0.9, "test": 1.2}
    assert [x["seed"] for x in r["runs"]["elmo"]] == [1, 2]


def test_unfinished_run_is_named(tmp_path):
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--elmo", str(tmp_path / "nope"), "--baseline", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2 and "nope" in p.stderr and "results.json" in p.stderr
