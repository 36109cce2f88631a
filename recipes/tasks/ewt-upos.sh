#!/usr/bin/env bash
# UD English-EWT UPOS with ELMo against the strongest baseline without it (word embedding + character CNN), seeds 1
# and 2 each, the same budget. Rebuilds the biLM first when it is missing (the WikiText-2 pair, about an hour,
# recipes/lm/wikitext2-small.sh; then `elmokit adapt` to EWT train's words, ~12 minutes, recipes/lm/ewt-adapt.sh),
# then trains the four taggers two at a time (one thread each) and prints mean, spread and gain
# (scripts/seed_gain.py). Extra arguments are config overrides for all four.
#   ELMOKIT_DATA=../shared/data bash recipes/tasks/ewt-upos.sh
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding ud-english-ewt/}"
source recipes/tasks/seed-pairs.sh
[ -f "$runs/ewt-adapt-bilm/manifest.json" ] || bash recipes/lm/ewt-adapt.sh
seed_pairs train-tagger recipes/tasks/ewt-upos.yaml ewt-upos "$@"
