#!/usr/bin/env bash
# NSMC sentiment with ELMo against the strongest baseline without it (word embedding + character CNN), seeds 1 and
# 2 each, the same budget. Rebuilds the Korean biLM first when it is missing (about an hour:
# recipes/lm/nsmc-small.sh), bundles it, then trains the four classifiers two at a time (one thread each) and prints
# mean, spread and gain (scripts/seed_gain.py). Extra arguments are config overrides for all four.
#   ELMOKIT_DATA=../shared/data bash recipes/tasks/nsmc.sh
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding nsmc/}"
source recipes/tasks/seed-pairs.sh
[ -f "$runs/nsmc-full-fwd/model/manifest.json" ] && [ -f "$runs/nsmc-full-bwd/model/manifest.json" ] \
  || bash recipes/lm/nsmc-small.sh "$runs"
[ -f "$runs/nsmc-full-bilm/manifest.json" ] \
  || elmokit bundle "$runs/nsmc-full-fwd" "$runs/nsmc-full-bwd" --out "$runs/nsmc-full-bilm"
seed_pairs train-classifier recipes/tasks/nsmc.yaml nsmc "$@"
