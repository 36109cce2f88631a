"""Write the words of a CoNLL-U file (its FORM column) as plain text, one sentence per line: the input that
`elmokit pretrain` takes, segmented exactly as a tagger's words are when the biLM embeds them. Multiword-token
ranges (``1-2``) and empty nodes (``1.1``) are skipped, as the tagger's reader skips them. Used to adapt a biLM to
a treebank's domain (recipes/lm/ewt-adapt.yaml).

    python scripts/conllu_text.py "$ELMOKIT_DATA/ud-english-ewt/en_ewt-ud-train.conllu" --out /tmp/ewt-train.txt
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("conllu")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    words: list[str] = []
    n = 0
    with open(args.conllu, encoding="utf-8") as f, open(args.out + ".partial", "w", encoding="utf-8") as out:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line:
                if words:
                    out.write(" ".join(words) + "\n")
                    n += 1
                words = []
                continue
            if line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != 10:
                print(f"error: {args.conllu}:{lineno}: {len(cols)} tab-separated columns, CoNLL-U has 10",
                      file=sys.stderr)
                return 2
            if cols[0].isdigit():
                words.append(cols[1].replace(" ", "_"))  # a FORM with a space would split into two words
        if words:
            out.write(" ".join(words) + "\n")
            n += 1
    import os

    os.replace(args.out + ".partial", args.out)
    print(f"{args.out}: {n} sentences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
