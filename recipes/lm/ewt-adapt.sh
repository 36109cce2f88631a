#!/usr/bin/env bash
# Adapt the WikiText-2 `small` biLM to UD English-EWT's domain: both LMs go on training on the words of EWT train
# (recipes/lm/ewt-adapt.yaml, side by side, one thread each), then are evaluated on EWT dev's words before and
# after, and bundled as ewt-adapt-bilm. Rebuilds the WikiText-2 LMs first when missing (about an hour).
#   ELMOKIT_DATA=../shared/data bash recipes/lm/ewt-adapt.sh
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding ud-english-ewt/ and wikitext-2/}"
runs="$HOME/elmokit-runs"
mkdir -p "$runs/data"
[ -f "$runs/wt2-small-fwd/model/manifest.json" ] && [ -f "$runs/wt2-small-bwd/model/manifest.json" ] \
  || bash recipes/lm/wikitext2-small.sh "$runs"
for split in train dev; do
  [ -f "$runs/data/ewt-$split.txt" ] || python scripts/conllu_text.py \
    "$ELMOKIT_DATA/ud-english-ewt/en_ewt-ud-$split.conllu" --out "$runs/data/ewt-$split.txt"
done
pids=()
for d in fwd bwd; do
  if [ ! -f "$runs/ewt-adapt-$d/model/manifest.json" ]; then
    elmokit pretrain --config recipes/lm/ewt-adapt.yaml --direction "$([ $d = fwd ] && echo forward || echo backward)" \
      --out "$runs/ewt-adapt-$d" --init-from "$runs/wt2-small-$d" --resume --quiet > "$runs/ewt-adapt-$d.log" 2>&1 &
    pids+=($!)
    sleep 30   # let the first run build the token cache before the second reads it
  fi
done
for p in "${pids[@]}"; do wait "$p"; done
for d in fwd bwd; do
  for m in wt2-small ewt-adapt; do
    [ -f "$runs/$m-$d.ewt-dev.json" ] || elmokit evaluate "$runs/$m-$d" --corpus "$runs/data/ewt-dev.txt" --json \
      > "$runs/$m-$d.ewt-dev.json"
    echo "$m-$d on EWT dev: $(tr -d '\n ' < "$runs/$m-$d.ewt-dev.json")"
  done
done
[ -f "$runs/ewt-adapt-bilm/manifest.json" ] \
  || elmokit bundle "$runs/ewt-adapt-fwd" "$runs/ewt-adapt-bwd" --out "$runs/ewt-adapt-bilm"
