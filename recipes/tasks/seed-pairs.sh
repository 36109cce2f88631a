# Shared by the task recipes (ewt-upos.sh, nsmc.sh, nsmc-sizes.sh); source it, then call seed_pairs.
runs="$HOME/elmokit-runs"

run_one() {  # COMMAND CONFIG NAME OVERRIDE...: one run into $runs/NAME on one thread (log: $runs/NAME.log), skipped
  #            when its results exist, resumed from its checkpoint when it was stopped
  local cmd=$1 config=$2 name=$3; shift 3
  [ -f "$runs/$name/results.json" ] || OMP_NUM_THREADS=1 elmokit "$cmd" "$config" --quiet \
    --resume train.threads=1 out="$runs/$name" "$@" > "$runs/$name.log" 2>&1
}

seed_pairs() {  # COMMAND CONFIG PREFIX OVERRIDE...: PREFIX-elmo-s{1,2} against PREFIX-base-s{1,2} (model.use_elmo=false)
  #               in two lanes of equal length (the first ELMo run writes the biLM feature cache long before the
  #               second reads it), then mean, spread and gain (scripts/seed_gain.py) into $runs/PREFIX-gain.txt
  local cmd=$1 config=$2 prefix=$3; shift 3
  ( run_one "$cmd" "$config" "$prefix-elmo-s1" train.seed=1 "$@"
    run_one "$cmd" "$config" "$prefix-base-s2" train.seed=2 model.use_elmo=false "$@" ) &
  local lane=$!
  run_one "$cmd" "$config" "$prefix-base-s1" train.seed=1 model.use_elmo=false "$@"
  run_one "$cmd" "$config" "$prefix-elmo-s2" train.seed=2 "$@"
  wait "$lane"
  gain "$prefix" "$prefix"
}

other_bilm() {  # COMMAND CONFIG PREFIX BASE OVERRIDE...: PREFIX-elmo-s{1,2} (another biLM, given in the overrides)
  #              side by side, then the baselines BASE-base-s{1,2} where missing (model.use_elmo=false: they do not
  #              read the biLM, so the seed_pairs runs of BASE serve every biLM), then the gain into $runs/PREFIX-gain.txt
  local cmd=$1 config=$2 prefix=$3 base=$4; shift 4
  run_one "$cmd" "$config" "$prefix-elmo-s1" train.seed=1 "$@" &
  local lane=$!
  run_one "$cmd" "$config" "$prefix-elmo-s2" train.seed=2 "$@"
  wait "$lane"
  run_one "$cmd" "$config" "$base-base-s1" train.seed=1 model.use_elmo=false &
  lane=$!
  run_one "$cmd" "$config" "$base-base-s2" train.seed=2 model.use_elmo=false
  wait "$lane"
  gain "$prefix" "$base"
}

gain() {  # PREFIX BASE: mean, spread and gain of PREFIX-elmo-s{1,2} over BASE-base-s{1,2} (scripts/seed_gain.py)
  #         into $runs/PREFIX-gain.txt
  python scripts/seed_gain.py --elmo "$runs/$1"-elmo-s{1,2} --baseline "$runs/$2"-base-s{1,2} | tee "$runs/$1-gain.txt"
}
