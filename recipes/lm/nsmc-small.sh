#!/usr/bin/env bash
# Rebuild the Korean `small` forward and backward LMs if missing (side by side, one thread each), on the first
# 145,000 reviews of NSMC train, validated on the last 5,000 (recipes/lm/nsmc-text.sh writes both); bundle them as
# RUNS_DIR/nsmc-full-bilm (the NSMC classifier's biLM), evaluate both directions on NSMC test's review text (per
# piece, first 200k pieces) and check the fit of that text against the LMs' own validation. Needs ELMOKIT_DATA.
#   ELMOKIT_DATA=../shared/data bash recipes/lm/nsmc-small.sh [RUNS_DIR]
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding nsmc/}"
runs="${1:-$HOME/elmokit-runs}"
bash recipes/lm/nsmc-text.sh "$runs"
d="$runs/data"
pids=()
for dir in forward backward; do
  out="$runs/nsmc-full-$([ $dir = forward ] && echo fwd || echo bwd)"
  if [ ! -f "$out/model/manifest.json" ]; then
    elmokit pretrain --config recipes/lm/nsmc-small.yaml --direction "$dir" --out "$out" --resume --quiet \
      > "$out.log" 2>&1 &
    pids+=($!)
    sleep 30   # let the first run build the token cache before the second reads it
  fi
done
for p in "${pids[@]}"; do wait "$p"; done
bilm="$runs/nsmc-full-bilm"
[ -f "$bilm/manifest.json" ] || elmokit bundle "$runs/nsmc-full-fwd" "$runs/nsmc-full-bwd" --out "$bilm"
out="$runs/nsmc-full.test.json"
[ -f "$out" ] || { elmokit evaluate "$bilm" --corpus "$d/nsmc-test.txt" --max-tokens 200000 --json > "$out.tmp" \
  && mv "$out.tmp" "$out"; }
cat "$out"
elmokit fit "$bilm" "$d/nsmc-test.txt" --json | tee "$runs/nsmc-full.fit.json"
