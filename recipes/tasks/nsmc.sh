#!/usr/bin/env bash
# NSMC sentiment with ELMo against the strongest baseline without it (word embedding + character CNN), seeds 1 and
# 2 each, the same budget. Rebuilds the Korean biLM first when it is missing (about an hour:
# recipes/lm/nsmc-small.sh), bundles it, then trains the four classifiers two at a time (one thread each) and prints
# mean, spread and gain (scripts/seed_gain.py). Extra arguments are config overrides for all four.
#   ELMOKIT_DATA=../shared/data bash recipes/tasks/nsmc.sh
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding nsmc/}"
runs="$HOME/elmokit-runs"
[ -f "$runs/nsmc-full-fwd/model/manifest.json" ] && [ -f "$runs/nsmc-full-bwd/model/manifest.json" ] \
  || bash recipes/lm/nsmc-small.sh
[ -f "$runs/nsmc-full-bilm/manifest.json" ] \
  || elmokit bundle "$runs/nsmc-full-fwd" "$runs/nsmc-full-bwd" --out "$runs/nsmc-full-bilm"
classify() {  # NAME OVERRIDE...: skipped when its results exist, resumed from its checkpoint when it was stopped
  local name=$1; shift
  [ -f "$runs/$name/results.json" ] || OMP_NUM_THREADS=1 elmokit train-classifier recipes/tasks/nsmc.yaml --quiet \
    --resume train.threads=1 out="$runs/$name" "$@" > "$runs/$name.log" 2>&1
}
# two lanes of equal length; the first ELMo run writes the biLM feature cache long before the second reads it
( classify nsmc-elmo-s1 train.seed=1 "$@"; classify nsmc-base-s2 train.seed=2 model.use_elmo=false "$@" ) &
lane=$!
classify nsmc-base-s1 train.seed=1 model.use_elmo=false "$@"
classify nsmc-elmo-s2 train.seed=2 "$@"
wait "$lane"
python scripts/seed_gain.py --elmo "$runs"/nsmc-elmo-s{1,2} --baseline "$runs"/nsmc-base-s{1,2} \
  | tee "$runs/nsmc-gain.txt"
