#!/usr/bin/env bash
# Rebuild the Korean character-CNN pair if missing (one position per eojeol, its syllables through the CNN; forward,
# then backward with the forward's encoder), bundle it, evaluate both directions on NSMC test's review text (per
# eojeol) and check the fit of that text against the LMs' own held-out validation (the last 5,000 reviews of NSMC
# train, which pretraining does not read). Needs ELMOKIT_DATA (../shared/data).
#   ELMOKIT_DATA=../shared/data bash recipes/lm/nsmc-charcnn.sh [RUNS_DIR]
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding nsmc/}"
runs="${1:-$HOME/elmokit-runs}"
cfg=recipes/lm/nsmc-charcnn.yaml
bash recipes/lm/nsmc-text.sh "$runs"   # NSMC train / test / first 145k / last 5k review text
d="$runs/data"
fwd="$runs/nsmc-charcnn-fwd" bwd="$runs/nsmc-charcnn-bwd" bilm="$runs/nsmc-charcnn-bilm"
[ -f "$fwd/model/manifest.json" ] || elmokit pretrain --config "$cfg" --direction forward --out "$fwd" --resume --quiet \
  > "$fwd.log" 2>&1
[ -f "$bwd/model/manifest.json" ] || elmokit pretrain --config "$cfg" --direction backward --out "$bwd" --resume \
  --quiet "model.encoder_from=$fwd" > "$bwd.log" 2>&1
[ -f "$bilm/manifest.json" ] || elmokit bundle "$fwd" "$bwd" --out "$bilm"
out="$runs/nsmc-charcnn.test.json"
[ -f "$out" ] || { elmokit evaluate "$bilm" --corpus "$d/nsmc-test.txt" --json > "$out.tmp" && mv "$out.tmp" "$out"; }
cat "$out"
elmokit fit "$bilm" "$d/nsmc-test.txt" --json | tee "$runs/nsmc-charcnn.fit.json"
