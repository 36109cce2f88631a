#!/usr/bin/env bash
# UD English-EWT UPOS with ELMo against the strongest baseline without it (word embedding + character CNN), seeds 1
# and 2 each, the same budget. Rebuilds the biLM first when it is missing (the WikiText-2 pair, about an hour,
# recipes/lm/wikitext2-small.sh; then `elmokit adapt` to EWT train's words, ~12 minutes, recipes/lm/ewt-adapt.sh),
# then trains the four taggers two at a time (one thread each) and prints mean, spread and gain
# (scripts/seed_gain.py). Extra arguments are config overrides for all four.
#   ELMOKIT_DATA=../shared/data bash recipes/tasks/ewt-upos.sh
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding ud-english-ewt/}"
runs="$HOME/elmokit-runs"
[ -f "$runs/ewt-adapt-bilm/manifest.json" ] || bash recipes/lm/ewt-adapt.sh
tag() {  # NAME OVERRIDE...: skipped when its results exist, resumed from its checkpoint when it was stopped
  local name=$1; shift
  [ -f "$runs/$name/results.json" ] || OMP_NUM_THREADS=1 elmokit train-tagger recipes/tasks/ewt-upos.yaml --quiet \
    --resume train.threads=1 out="$runs/$name" "$@" > "$runs/$name.log" 2>&1
}
# two lanes of equal length; the first ELMo run writes the biLM feature cache long before the second reads it
( tag ewt-upos-elmo-s1 train.seed=1 "$@"; tag ewt-upos-base-s2 train.seed=2 model.use_elmo=false "$@" ) &
lane=$!
tag ewt-upos-base-s1 train.seed=1 model.use_elmo=false "$@"
tag ewt-upos-elmo-s2 train.seed=2 "$@"
wait "$lane"
python scripts/seed_gain.py --elmo "$runs"/ewt-upos-elmo-s{1,2} --baseline "$runs"/ewt-upos-base-s{1,2} \
  | tee "$runs/ewt-upos-gain.txt"
