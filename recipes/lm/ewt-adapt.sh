#!/usr/bin/env bash
# Adapt the WikiText-2 `small` biLM to UD English-EWT's domain with one command, `elmokit adapt`: both LMs go on
# training on the words of EWT train (no tags) side by side, one thread each, for at most 4 epochs in an 11-minute
# budget per direction (48 CPU-minutes of WikiText-2 pretraining + 11: the recipes' 60-minute biLM budget), are
# measured on EWT dev's words before and after, and are bundled as ewt-adapt-bilm (figures in
# ewt-adapt-bilm.work/adapt.json). Rebuilds and bundles the WikiText-2 LMs first when missing (about an hour).
#   ELMOKIT_DATA=../shared/data bash recipes/lm/ewt-adapt.sh
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding ud-english-ewt/ and wikitext-2/}"
runs="$HOME/elmokit-runs"
ewt="$ELMOKIT_DATA/ud-english-ewt"
[ -f "$runs/wt2-small-fwd/model/manifest.json" ] && [ -f "$runs/wt2-small-bwd/model/manifest.json" ] \
  || bash recipes/lm/wikitext2-small.sh "$runs"
[ -f "$runs/wt2-small-bilm/manifest.json" ] \
  || elmokit bundle "$runs/wt2-small-fwd" "$runs/wt2-small-bwd" --out "$runs/wt2-small-bilm"
[ -f "$runs/ewt-adapt-bilm/manifest.json" ] \
  || elmokit adapt "$runs/wt2-small-bilm" "$ewt/en_ewt-ud-train.conllu" --format conllu \
       --dev "$ewt/en_ewt-ud-dev.conllu" --minutes 11 --out "$runs/ewt-adapt-bilm"
echo "EWT dev perplexity per piece, before and after: $(tr -d '\n ' < "$runs/ewt-adapt-bilm.work/adapt.json")"
