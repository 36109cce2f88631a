#!/usr/bin/env bash
# English, one character at a time: train the character-level LSTM LM on WikiText-2 (if missing), measure bits per
# character on valid and test, sample from it, look inside it (on valid: text it never trained on) with an untrained
# twin as the control, render the page in a browser when one is installed, and measure its gradient flow.
#   ELMOKIT_DATA=../shared/data bash recipes/chars/wikitext2-char.sh [RUNS_DIR]
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding wikitext-2/}"
runs="${1:-$HOME/elmokit-runs}"
wt="$ELMOKIT_DATA/wikitext-2"
mkdir -p "$runs"
[ -f vocab/en-wikitext2-char.model ] || elmokit vocab "$wt/wiki.train.tokens" --out vocab/en-wikitext2-char \
  --model-type char --user-symbol '<unk>'
out="$runs/wt2-char-lstm"
[ -f "$out/model/manifest.json" ] || elmokit pretrain --config recipes/chars/wikitext2-char-lstm.yaml \
  --direction forward --out "$out" --resume --quiet > "$out.log" 2>&1
for split in valid test; do
  [ -f "$out.$split.json" ] || { elmokit evaluate "$out" --corpus "$wt/wiki.$split.tokens" --bptt 150 --batch 32 \
    --json > "$out.$split.json.tmp" && mv "$out.$split.json.tmp" "$out.$split.json"; }
  python -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], f\"{r['bits_per_char']:.3f} bits per character\")" \
    "$out.$split.json" "$split"
done
elmokit generate "$out" --prompt "The film" --tokens 300 --seed 1 | tee "$out.sample.txt"
elmokit cells "$out" "$wt/wiki.valid.tokens" --out "$out/cells" --control --max-pieces 60000
if python scripts/screenshot_page.py "$out/cells/cells.html" --out "$out/cells/screenshot.png"; then :; else
  echo "(no browser screenshot: see the line above)"; fi
elmokit gradients "$out" "$wt/wiki.valid.tokens" --out "$out/gradients" --max-lag 300
