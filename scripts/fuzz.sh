#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for FUZZ_SECONDS (default 30) from its
# seed corpus in tests/fuzz/corpus/<target>/. New inputs go to build-fuzz/corpus/, not into the
# repository; crashes are written to build-fuzz/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-30}
cmake -S . -B build-fuzz -DPSAGW_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j "$(nproc)" -- --no-print-directory >/dev/null
for seeds in tests/fuzz/corpus/*/; do
  name=$(basename "$seeds")
  work=build-fuzz/corpus/$name
  mkdir -p "$work"
  cp -n "$seeds"* "$work"/ 2>/dev/null || true
  echo "fuzz: $name for ${SECONDS_EACH}s"
  log=build-fuzz/$name.log
  if ! LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp \
      build-fuzz/tests/fuzz/fuzz_$name -max_total_time="$SECONDS_EACH" -max_len=4096 \
      -print_final_stats=1 -artifact_prefix=build-fuzz/ "$work" >"$log" 2>&1; then
    echo "fuzz: $name failed:"; grep -E "ERROR|SUMMARY|artifact" "$log" || tail -20 "$log"
    exit 1
  fi
  grep -E "^stat::(number_of_executed_units|new_units_added|peak_rss_mb)" "$log" | sed 's/^/  /'
done
echo "fuzz: no failures"
