"""Write one column of a TSV file (with a header row) as plain text, one line per row: the input that
`elmokit vocab` and `elmokit pretrain` take. Used for NSMC (`id<TAB>document<TAB>label`).

    python scripts/tsv_column.py "$ELMOKIT_DATA/nsmc/ratings_train.txt" --column document --out /tmp/nsmc-train.txt
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tsv")
    ap.add_argument("--column", required=True, help="header name of the column to keep")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    with open(args.tsv, encoding="utf-8", newline="") as f, open(args.out, "w", encoding="utf-8") as out:
        header = f.readline().rstrip("\r\n").split("\t")
        if args.column not in header:
            print(f"error: {args.tsv}:1: no column {args.column!r} in header {header}", file=sys.stderr)
            return 2
        k = header.index(args.column)
        for lineno, line in enumerate(f, start=2):
            cols = line.rstrip("\r\n").split("\t")
            if len(cols) != len(header):
                print(f"error: {args.tsv}:{lineno}: {len(cols)} columns, header has {len(header)}", file=sys.stderr)
                return 2
            out.write(cols[k] + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
