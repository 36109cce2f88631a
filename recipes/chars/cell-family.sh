#!/usr/bin/env bash
# The cell family (RNN, GRU, LSTM, LSTMP; ~440k parameters each, 8 CPU-minutes each) and two variants for the
# gradient recipe (the RNN without clipping; the LSTM with 20-character truncation), character-level on WikiText-2.
# Trains what is missing (one at a time, one thread), evaluates each on the whole validation text, measures the
# gradient flow of each, and plots validation bits per character over CPU time.
#   ELMOKIT_DATA=../shared/data bash recipes/chars/cell-family.sh [RUNS_DIR]
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding wikitext-2/}"
runs="${1:-$HOME/elmokit-runs}"
cfg=recipes/chars/cell-family.yaml
valid="$ELMOKIT_DATA/wikitext-2/wiki.valid.tokens"
mkdir -p "$runs"
declare -A overrides=(
  [lstm]=""
  [gru]="model.cell=gru model.hidden_size=294"
  [rnn]="model.cell=rnn model.hidden_size=472"
  [lstmp]="model.hidden_size=416 model.proj_size=128"
  [rnn-noclip]="model.cell=rnn model.hidden_size=472 train.clip_norm=0"
  [lstm-bptt20]="train.bptt=20 train.batch_size=240"
)
names=(lstm gru rnn lstmp rnn-noclip lstm-bptt20)
for name in "${names[@]}"; do
  out="$runs/family-$name"
  if [ ! -f "$out/model/manifest.json" ]; then
    # shellcheck disable=SC2086  # the overrides are words
    elmokit pretrain --config "$cfg" --direction forward --out "$out" --resume --quiet ${overrides[$name]} \
      > "$out.log" 2>&1
  fi
  [ -f "$out.valid.json" ] || { elmokit evaluate "$out" --corpus "$valid" --bptt 150 --batch 32 --json > "$out.valid.json.tmp" \
    && mv "$out.valid.json.tmp" "$out.valid.json"; }
  [ -f "$out/gradients.json" ] || elmokit gradients "$out" "$valid" --out "$out/gradients" --quiet
done
python scripts/cell_family_report.py "$runs" --out "$runs/family"
