#!/usr/bin/env bash
# NSMC's review text as the LM recipes read it, written once into RUNS_DIR/data (each file under a temporary name
# first, so a present file is complete): nsmc-train.txt and nsmc-test.txt (the document column of ratings_train.txt
# and ratings_test.txt, one review a line), nsmc-train-145k.txt (the first 145,000 training reviews: what the
# Korean LMs train on) and nsmc-dev-5k.txt (the last 5,000: their validation text, and the NSMC classifier's dev
# set). Used by nsmc-small.sh, nsmc-charcnn.sh, fit-check.sh and ../chars/nsmc-char.sh. Needs ELMOKIT_DATA.
#   ELMOKIT_DATA=../shared/data bash recipes/lm/nsmc-text.sh [RUNS_DIR]
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding nsmc/}"
d="${1:-$HOME/elmokit-runs}/data"
mkdir -p "$d"
for split in train test; do
  [ -f "$d/nsmc-$split.txt" ] || { python scripts/tsv_column.py "$ELMOKIT_DATA/nsmc/ratings_$split.txt" \
    --column document --out "$d/nsmc-$split.txt.tmp" && mv "$d/nsmc-$split.txt.tmp" "$d/nsmc-$split.txt"; }
done
[ -f "$d/nsmc-train-145k.txt" ] || { head -n 145000 "$d/nsmc-train.txt" > "$d/nsmc-train-145k.txt.tmp" \
  && mv "$d/nsmc-train-145k.txt.tmp" "$d/nsmc-train-145k.txt"; }
[ -f "$d/nsmc-dev-5k.txt" ] || { tail -n 5000 "$d/nsmc-train.txt" > "$d/nsmc-dev-5k.txt.tmp" \
  && mv "$d/nsmc-dev-5k.txt.tmp" "$d/nsmc-dev-5k.txt"; }
