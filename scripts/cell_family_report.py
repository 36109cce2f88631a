"""The cell-family report: validation curves over CPU time and gradient flow, from the runs of
recipes/chars/cell-family.sh. Prints a Markdown table and one JSON line; writes OUT-curves.png and OUT-gradients.png.

    python scripts/cell_family_report.py ~/elmokit-runs --out ~/elmokit-runs/family
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

NAMES = {  # run name -> label
    "rnn": "RNN (472)",
    "gru": "GRU (294)",
    "lstm": "LSTM (256)",
    "lstmp": "LSTMP (416 -> 128)",
    "rnn-noclip": "RNN, no clipping",
    "lstm-bptt20": "LSTM, 20-step truncation",
}


def load(runs: Path, name: str) -> dict | None:
    d = runs / f"family-{name}"
    if not (d / "model" / "manifest.json").is_file():
        return None
    records = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines() if x]
    manifest = json.loads((d / "model" / "manifest.json").read_text())
    out = {"records": records, "summary": manifest.get("summary", {})}
    for key, path in (("valid", runs / f"family-{name}.valid.json"), ("gradients", d / "gradients.json")):
        out[key] = json.loads(path.read_text()) if path.is_file() else None
    return out


def fmt(x, spec: str) -> str:
    return "" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="prefix of the two PNGs")
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from elmokit.core.plots import plot_gradient_norms, save_figure

    runs = {n: r for n in NAMES if (r := load(args.runs, n)) is not None}
    labels = {}
    for n, r in runs.items():  # a run whose validation (from a zero state) broke down says so in its label
        broke = r["valid"] is not None and r["valid"]["bits_per_char"] > 5
        labels[n] = NAMES[n] + (" (validation from a zero state diverges)" if broke else "")
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, r in runs.items():
        valid = [x for x in r["records"] if x["split"] == "valid" and "cpu_s" in x]
        style = "--" if "-" in name else "-"
        ax.plot(
            [x["cpu_s"] / 60 for x in valid],
            [x["loss"] / math.log(2) for x in valid],
            style,
            marker=".",
            label=labels[name],
        )
    ax.set_ylim(1.8, 3.6)  # a diverging run leaves the plot rather than squashing the others
    ax.set_xlabel("CPU minutes (one thread)")
    ax.set_ylabel("valid bits per piece (~ per character)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Character-level WikiText-2, ~440k parameters each; validation on a 20k-piece prefix", fontsize=9)
    fig.tight_layout()
    save_figure(fig, args.out.with_name(args.out.name + "-curves.png"))
    grads = {labels[n]: r["gradients"]["states"] for n, r in runs.items() if r["gradients"]}
    if grads:
        plot_gradient_norms(
            grads,
            args.out.with_name(args.out.name + "-gradients.png"),
            title="||dloss_t / dh_(t-k)|| (first layer), median of 32 sequences, WikiText-2 valid",
        )
    rows = [
        "| run | parameters | steps | CPU min | valid bits/char (whole valid) | grad. ratio k=10 | k=50 | k=100 | "
        "k where h1's falls to 1/100 | c1's |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    report = {}
    for name, r in runs.items():
        s = r["summary"]
        bpc = r["valid"]["bits_per_char"] if r["valid"] else None
        g = r["gradients"]["states"] if r["gradients"] else {}
        ratio = {k: g["h1"]["ratio_to_lag0"][k] for k in (10, 50, 100)} if g else {}
        falls = {st: g[st]["lag_to_1/100"] for st in ("h1", "c1") if st in g}
        report[name] = {
            "parameters": s.get("parameters"),
            "steps": s.get("steps"),
            "cpu_minutes": s.get("cpu_minutes_last_run"),
            "valid_bits_per_char": bpc,
            "grad_ratio_h1": ratio,
            "lag_to_1/100": falls,
        }
        cells = [
            NAMES[name],
            fmt(s.get("parameters"), ","),
            fmt(s.get("steps"), ","),
            fmt(s.get("cpu_minutes_last_run"), ".1f"),
            fmt(bpc, ".3f"),
            *(fmt(ratio.get(k), ".2g") for k in (10, 50, 100)),
        ]
        for st in ("h1", "c1"):
            cells.append("" if st not in g else f">{len(g[st]['median']) - 1}" if falls[st] is None else str(falls[st]))
        rows.append("| " + " | ".join(cells) + " |")
    print("\n".join(rows))
    print(json.dumps({"cell_family": report}))


if __name__ == "__main__":
    main()
