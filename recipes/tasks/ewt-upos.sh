#!/usr/bin/env bash
# UD English-EWT UPOS with and without ELMo. Rebuilds the WikiText-2 biLM first when it is missing (about an
# hour: recipes/lm/wikitext2-small.sh), bundles it, then trains both taggers one after the other.
#   ELMOKIT_DATA=../shared/data bash recipes/tasks/ewt-upos.sh
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding ud-english-ewt/}"
runs="$HOME/elmokit-runs"
[ -f "$runs/wt2-small-fwd/model/manifest.json" ] && [ -f "$runs/wt2-small-bwd/model/manifest.json" ] \
  || bash recipes/lm/wikitext2-small.sh "$runs"
[ -f "$runs/wt2-small-bilm/manifest.json" ] \
  || elmokit bundle "$runs/wt2-small-fwd" "$runs/wt2-small-bwd" --out "$runs/wt2-small-bilm"
# each run is skipped when its results exist, and resumed from its checkpoint when it was stopped
[ -f "$runs/ewt-upos-elmo/results.json" ] || elmokit train-tagger recipes/tasks/ewt-upos.yaml --quiet --resume "$@"
[ -f "$runs/ewt-upos-noelmo/results.json" ] || elmokit train-tagger recipes/tasks/ewt-upos.yaml --quiet --resume \
  model.use_elmo=false out="$runs/ewt-upos-noelmo" "$@"
for r in ewt-upos-elmo ewt-upos-noelmo; do echo "$r: $(cat "$runs/$r/results.json" | tr -d '\n ')"; done
