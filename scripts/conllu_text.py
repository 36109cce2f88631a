"""Write the words of a CoNLL-U file (its FORM column) as plain text, one sentence per line: the input that
`elmokit pretrain` takes, with the words the tagger reads (the same reader: multiword-token ranges ``1-2`` and empty
nodes ``1.1`` are skipped, a malformed line is an error naming file and line). Used to adapt a biLM to a treebank's
domain (recipes/lm/ewt-adapt.yaml).

    python scripts/conllu_text.py "$ELMOKIT_DATA/ud-english-ewt/en_ewt-ud-train.conllu" --out /tmp/ewt-train.txt
"""

from __future__ import annotations

import argparse
import os
import sys

from elmokit.core.errors import ElmokitError
from elmokit.tasks.readers import read_conllu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("conllu")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    try:
        sentences = read_conllu(args.conllu)
    except ElmokitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with open(args.out + ".partial", "w", encoding="utf-8") as out:
        for s in sentences:
            out.write(" ".join(s.words) + "\n")
    os.replace(args.out + ".partial", args.out)
    print(f"{args.out}: {len(sentences)} sentences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
