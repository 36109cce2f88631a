#!/usr/bin/env bash
# Rebuild the WikiText-2 `small` forward and backward LMs if missing (side by side, one thread each), then
# evaluate both on valid and test (full softmax, per subword and per word). Needs ELMOKIT_DATA (../shared/data).
#   ELMOKIT_DATA=../shared/data bash recipes/lm/wikitext2-small.sh [RUNS_DIR]
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding wikitext-2/}"
runs="${1:-$HOME/elmokit-runs}"
cfg=recipes/lm/wikitext2-small.yaml
mkdir -p "$runs"
pids=()
for dir in forward backward; do
  out="$runs/wt2-small-$([ $dir = forward ] && echo fwd || echo bwd)"
  if [ ! -f "$out/model/manifest.json" ]; then
    elmokit pretrain --config "$cfg" --direction "$dir" --out "$out" --resume --quiet > "$out.log" 2>&1 &
    pids+=($!)
    sleep 30   # let the first run build the token cache before the second reads it
  fi
done
for p in "${pids[@]}"; do wait "$p"; done
for dir in fwd bwd; do
  for split in valid test; do
    out="$runs/wt2-small-$dir.$split.json"
    [ -f "$out" ] || { elmokit evaluate "$runs/wt2-small-$dir" --corpus "$ELMOKIT_DATA/wikitext-2/wiki.$split.tokens" \
      --json > "$out.tmp" && mv "$out.tmp" "$out"; }  # a finished file only by its name; kept when it exists
    cat "$out"
  done
done
