#!/usr/bin/env bash
# NSMC gain against labelled-data size: ELMo against word embedding + character CNN, each trained on only the first
# N of the 145,000 training reviews (data.max_train; dev and test as in recipes/tasks/nsmc.yaml), seeds 1 and 2, up to
# 30 epochs (early stopping ends them sooner), the 25-minute budget of nsmc.yaml; prints each size's mean, spread and
# gain (scripts/seed_gain.py).
# Needs the NSMC biLM (recipes/tasks/nsmc.sh builds it). The sizes are the arguments (default: 5000).
#   ELMOKIT_DATA=../shared/data bash recipes/tasks/nsmc-sizes.sh 5000 20000
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding nsmc/}"
source recipes/tasks/seed-pairs.sh
[ -f "$runs/nsmc-full-bilm/manifest.json" ] || { echo "no $runs/nsmc-full-bilm: run recipes/tasks/nsmc.sh first" >&2; exit 2; }
for n in "${@:-5000}"; do
  seed_pairs train-classifier recipes/tasks/nsmc.yaml "nsmc-$n" data.max_train="$n" train.max_epochs=30
done
