#!/usr/bin/env bash
# NSMC gain against labelled-data size: ELMo against word embedding + character CNN, each trained on only the first
# N of the 145,000 training reviews (data.max_train; dev and test as in recipes/tasks/nsmc.yaml), seeds 1 and 2, up to
# 30 epochs (early stopping ends them sooner), the 25-minute budget of nsmc.yaml; prints each size's mean, spread and
# gain (scripts/seed_gain.py).
# Needs the NSMC biLM (recipes/tasks/nsmc.sh builds it). The sizes are the arguments (default: 5000).
#   ELMOKIT_DATA=../shared/data bash recipes/tasks/nsmc-sizes.sh 5000 20000
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding nsmc/}"
runs="$HOME/elmokit-runs"
[ -f "$runs/nsmc-full-bilm/manifest.json" ] || { echo "no $runs/nsmc-full-bilm: run recipes/tasks/nsmc.sh first" >&2; exit 2; }
classify() {  # NAME OVERRIDE...: skipped when its results exist, resumed from its checkpoint when it was stopped
  local name=$1; shift
  [ -f "$runs/$name/results.json" ] || OMP_NUM_THREADS=1 elmokit train-classifier recipes/tasks/nsmc.yaml --quiet \
    --resume train.threads=1 train.max_epochs=30 out="$runs/$name" "$@" > "$runs/$name.log" 2>&1
}
for n in "${@:-5000}"; do
  ( classify "nsmc-$n-elmo-s1" data.max_train="$n" train.seed=1
    classify "nsmc-$n-base-s2" data.max_train="$n" train.seed=2 model.use_elmo=false ) &
  lane=$!
  classify "nsmc-$n-base-s1" data.max_train="$n" train.seed=1 model.use_elmo=false
  classify "nsmc-$n-elmo-s2" data.max_train="$n" train.seed=2
  wait "$lane"
  python scripts/seed_gain.py --elmo "$runs/nsmc-$n-elmo-s"{1,2} --baseline "$runs/nsmc-$n-base-s"{1,2} \
    | tee "$runs/nsmc-$n-gain.txt"
done
