#!/usr/bin/env bash
# Does a biLM fit these texts? `elmokit fit` on the biLM's own test text, on the same text lower-cased, and on
# other corpora of ../shared/data (UD English-EWT's web text, PTB's lower-cased news, NSMC's Korean reviews).
# Prints one line per text (ratio to the biLM's own validation perplexity per piece, verdict) and writes
# RUNS_DIR/fit-check/*.json.
#   ELMOKIT_DATA=../shared/data bash recipes/lm/fit-check.sh BILM [RUNS_DIR]
set -euo pipefail
: "${ELMOKIT_DATA:?set ELMOKIT_DATA to the folder holding wikitext-2/, ptb/, ud-english-ewt/ and nsmc/}"
bilm="${1:?give the biLM bundle to check}"
runs="${2:-$HOME/elmokit-runs}"
out="$runs/fit-check"
mkdir -p "$out" "$runs/data"
d="$ELMOKIT_DATA"
tr '[:upper:]' '[:lower:]' < "$d/wikitext-2/wiki.valid.tokens" > "$runs/data/wiki.valid.lower.txt"
bash recipes/lm/nsmc-text.sh "$runs"   # NSMC test's review text, among others
check() {  # NAME FILE [elmokit fit options]
  local name=$1 file=$2; shift 2
  elmokit fit "$bilm" "$file" --json "$@" 2>/dev/null > "$out/$name.json.tmp"  # a finished file only by its name
  mv "$out/$name.json.tmp" "$out/$name.json"
  python -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"{sys.argv[2]:<28} ratio {r['ratio']:6.2f}  \" + ' '.join(f\"{k} {v['sample_ppl']:.1f}/{v['own_valid_ppl']:.1f}\" for k, v in r['directions'].items()) + f\"  upper {r['casing']['upper_share']:.1%}  {'fits' if r['fits'] else 'DOES NOT FIT'}\")" "$out/$name.json" "$name"
}
check wikitext2-test "$d/wikitext-2/wiki.test.tokens"
check wikitext2-valid-lowercased "$runs/data/wiki.valid.lower.txt"
check ewt-train "$d/ud-english-ewt/en_ewt-ud-train.conllu" --format conllu
check ptb-train "$d/ptb/ptb.train.txt"
check nsmc-test "$runs/data/nsmc-test.txt"
