#!/usr/bin/env bash
# Extract NSMC train's documents, then rebuild the Korean `small` forward and backward LMs if missing (side by
# side, one thread each). Needs ELMOKIT_DATA (../shared/data).
#   ELMOKIT_DATA=../shared/data bash recipes/lm/nsmc-small.sh
# then evaluates both on NSMC test's review text.
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding nsmc/}"
runs="$HOME/elmokit-runs"
mkdir -p "$runs/data"
[ -f "$runs/data/nsmc-train.txt" ] || python scripts/tsv_column.py "$ELMOKIT_DATA/nsmc/ratings_train.txt" \
  --column document --out "$runs/data/nsmc-train.txt"
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
echo "models: $runs/nsmc-full-fwd/model $runs/nsmc-full-bwd/model"
# perplexity on NSMC test's review text (held out from LM training), first 200k pieces, full softmax
[ -f "$runs/data/nsmc-test.txt" ] || python scripts/tsv_column.py "$ELMOKIT_DATA/nsmc/ratings_test.txt" \
  --column document --out "$runs/data/nsmc-test.txt"
for dir in fwd bwd; do
  elmokit evaluate "$runs/nsmc-full-$dir" --corpus "$runs/data/nsmc-test.txt" --max-tokens 200000 --json \
    | tee "$runs/nsmc-full-$dir.test.json"
done
