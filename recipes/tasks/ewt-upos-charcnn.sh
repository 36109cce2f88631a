#!/usr/bin/env bash
# UD English-EWT UPOS on the character-CNN biLM (the original ELMo's architecture, recipes/lm/wikitext2-charcnn.sh,
# adapted to EWT train's words as the subword biLM is in recipes/lm/ewt-adapt.sh), seeds 1 and 2, side by side, one
# thread each; then the word + char CNN baselines where missing (shared with recipes/tasks/ewt-upos.sh, which they do
# not distinguish: they read no biLM) and the gain. Extra arguments are config overrides for the ELMo runs.
#   ELMOKIT_DATA=../shared/data bash recipes/tasks/ewt-upos-charcnn.sh
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding ud-english-ewt/ and wikitext-2/}"
source recipes/tasks/seed-pairs.sh
ewt="$ELMOKIT_DATA/ud-english-ewt"
bilm="$runs/ewt-adapt-charcnn-bilm"
[ -f "$runs/wt2-charcnn-bilm/manifest.json" ] || bash recipes/lm/wikitext2-charcnn.sh "$runs"
[ -f "$bilm/manifest.json" ] \
  || elmokit adapt "$runs/wt2-charcnn-bilm" "$ewt/en_ewt-ud-train.conllu" --format conllu \
       --dev "$ewt/en_ewt-ud-dev.conllu" --minutes 11 --out "$bilm"
other_bilm train-tagger recipes/tasks/ewt-upos.yaml ewt-upos-charcnn ewt-upos "model.bilm=$bilm" "$@"
