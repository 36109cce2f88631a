#!/usr/bin/env bash
# UD English-EWT UPOS with and without ELMo. Rebuilds the biLM first when it is missing (the WikiText-2 pair,
# about an hour, recipes/lm/wikitext2-small.sh; then its adaptation to EWT train's words, ~13 minutes,
# recipes/lm/ewt-adapt.sh, which bundles it), then trains both taggers one after the other.
#   ELMOKIT_DATA=../shared/data bash recipes/tasks/ewt-upos.sh
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding ud-english-ewt/}"
runs="$HOME/elmokit-runs"
[ -f "$runs/ewt-adapt-bilm/manifest.json" ] || bash recipes/lm/ewt-adapt.sh
# each run is skipped when its results exist, and resumed from its checkpoint when it was stopped
[ -f "$runs/ewt-upos-elmo-2l/results.json" ] || elmokit train-tagger recipes/tasks/ewt-upos.yaml --quiet --resume "$@"
[ -f "$runs/ewt-upos-noelmo-2l/results.json" ] || elmokit train-tagger recipes/tasks/ewt-upos.yaml --quiet --resume \
  model.use_elmo=false out="$runs/ewt-upos-noelmo-2l" "$@"
for r in ewt-upos-elmo-2l ewt-upos-noelmo-2l; do echo "$r: $(cat "$runs/$r/results.json" | tr -d '\n ')"; done
