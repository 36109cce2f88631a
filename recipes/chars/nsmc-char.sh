#!/usr/bin/env bash
# Korean, one syllable at a time: extract NSMC's review text, build the character vocabulary (if missing), train
# the forward character-level LSTM (if missing), measure bits per character on NSMC test's reviews (held out),
# sample from it, and look inside it.
#   ELMOKIT_DATA=../shared/data bash recipes/chars/nsmc-char.sh [RUNS_DIR]
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding nsmc/}"
export ELMOKIT_RUNS="${1:-$HOME/elmokit-runs}"
runs="$ELMOKIT_RUNS"
bash recipes/lm/nsmc-text.sh "$runs"   # NSMC train and test review text
[ -f vocab/ko-nsmc-char.model ] || elmokit vocab "$runs/data/nsmc-train.txt" --out vocab/ko-nsmc-char \
  --model-type char --note "NSMC train's review text (scripts/tsv_column.py --column document), one piece a character"
out="$runs/nsmc-char-lstm"
[ -f "$out/model/manifest.json" ] || elmokit pretrain --config recipes/chars/nsmc-char.yaml --direction forward \
  --out "$out" --resume --quiet > "$out.log" 2>&1
elmokit evaluate "$out" --corpus "$runs/data/nsmc-test.txt" --bptt 100 --batch 32 --json > "$out.test.json.tmp"
mv "$out.test.json.tmp" "$out.test.json"
python -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"NSMC test: {r['bits_per_char']:.3f} bits per character\")" "$out.test.json"
elmokit generate "$out" --prompt "이 영화" --tokens 200 --seed 1 | tee "$out.sample.txt"
elmokit cells "$out" "$runs/data/nsmc-test.txt" --out "$out/cells" --control --max-pieces 40000
