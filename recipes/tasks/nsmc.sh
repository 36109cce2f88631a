#!/usr/bin/env bash
# NSMC sentiment with and without ELMo. Rebuilds the Korean biLM first when it is missing (about an hour:
# recipes/lm/nsmc-small.sh), bundles it, then trains both classifiers side by side (one thread each).
#   ELMOKIT_DATA=../shared/data bash recipes/tasks/nsmc.sh
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding nsmc/}"
runs="$HOME/elmokit-runs"
[ -f "$runs/nsmc-full-fwd/model/manifest.json" ] && [ -f "$runs/nsmc-full-bwd/model/manifest.json" ] \
  || bash recipes/lm/nsmc-small.sh
[ -f "$runs/nsmc-full-bilm/manifest.json" ] \
  || elmokit bundle "$runs/nsmc-full-fwd" "$runs/nsmc-full-bwd" --out "$runs/nsmc-full-bilm"
# each run is skipped when its results exist, and resumed from its checkpoint when it was stopped
pids=()
if [ ! -f "$runs/nsmc-elmo-2l-full/results.json" ]; then
  OMP_NUM_THREADS=1 elmokit train-classifier recipes/tasks/nsmc.yaml --quiet --resume train.threads=1 "$@" \
    > "$runs/nsmc-elmo-2l-full.log" 2>&1 &
  pids+=($!)
fi
if [ ! -f "$runs/nsmc-noelmo-2l/results.json" ]; then
  OMP_NUM_THREADS=1 elmokit train-classifier recipes/tasks/nsmc.yaml --quiet --resume train.threads=1 \
    model.use_elmo=false out="$runs/nsmc-noelmo-2l" "$@" > "$runs/nsmc-noelmo-2l.log" 2>&1 &
  pids+=($!)
fi
for p in "${pids[@]}"; do wait "$p"; done
for r in nsmc-elmo-2l-full nsmc-noelmo-2l; do echo "$r: $(tr -d '\n ' < "$runs/$r/results.json")"; done
