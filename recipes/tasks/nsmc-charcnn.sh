#!/usr/bin/env bash
# NSMC sentiment on the Korean character-CNN biLM (eojeols through a syllable CNN, recipes/lm/nsmc-charcnn.sh),
# seeds 1 and 2, side by side, one thread each; then the word + char CNN baselines where missing (shared with
# recipes/tasks/nsmc.sh: they read no biLM) and the gain. Extra arguments are config overrides for the ELMo runs.
#   ELMOKIT_DATA=../shared/data bash recipes/tasks/nsmc-charcnn.sh
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding nsmc/}"
source recipes/tasks/seed-pairs.sh
[ -f "$runs/nsmc-charcnn-bilm/manifest.json" ] || bash recipes/lm/nsmc-charcnn.sh "$runs"
other_bilm train-classifier recipes/tasks/nsmc.yaml nsmc-charcnn nsmc "model.bilm=$runs/nsmc-charcnn-bilm" "$@"
