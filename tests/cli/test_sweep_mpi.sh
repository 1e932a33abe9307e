#!/usr/bin/env bash
# `mpirun -np N minmax sweep` gives the same files for N = 1, 2 and 3 as a plain run, and a sweep whose
# rank was killed (SIGKILL) ends, after --resume, with the same files as an uninterrupted one.
#   test_sweep_mpi.sh MINMAX MPIRUN
set -euo pipefail
minmax=$1
mpirun=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/tinyattn-sweep-mpi-XXXXXX")
trap 'rm -rf "$work"' EXIT
# Root may run mpirun in CI containers; more processes than cores are allowed on a 2-core machine.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
spec=(--seeds 0-2 --weight-decay 0.3,1 --epochs 10 --no-plot)

same_files() {  # same_files DIR_A DIR_B: sweep.csv, phase.csv and every row file equal
  local a=$1 b=$2 f
  for f in sweep.csv phase.csv sweep-spec.txt; do
    cmp "$a/$f" "$b/$f" || { echo "FAIL: $a/$f differs from $b/$f"; diff "$a/$f" "$b/$f" | head; exit 1; }
  done
  diff -r "$a/runs" "$b/runs" >/dev/null || { echo "FAIL: $a/runs differs from $b/runs"; exit 1; }
}

"$minmax" sweep "${spec[@]}" --out "$work/plain" >"$work/plain.log"
for n in 1 2 3; do
  "$mpirun" -np "$n" "$minmax" sweep "${spec[@]}" --out "$work/np$n" >"$work/np$n.log" 2>&1 ||
    { echo "FAIL: mpirun -np $n exited $?"; cat "$work/np$n.log"; exit 1; }
  grep -q "over $n rank" "$work/np$n.log" || { echo "FAIL: -np $n did not run as $n ranks"; cat "$work/np$n.log"; exit 1; }
  same_files "$work/plain" "$work/np$n"
  echo "ok: mpirun -np $n gives the plain run's files"
done

# A usage error is said once, by rank 0, not once per rank; every rank ends with status 2.
status=0
"$mpirun" -np 3 "$minmax" sweep --epochs 0 --out "$work/bad" >"$work/bad.log" 2>&1 || status=$?
((status == 2)) || { echo "FAIL: a usage error under mpirun exited $status, expected 2"; cat "$work/bad.log"; exit 1; }
said=$(grep -c -- "--epochs must be in" "$work/bad.log" || true)
((said == 1)) || { echo "FAIL: the usage error was printed $said times, expected once"; cat "$work/bad.log"; exit 1; }
[[ ! -e "$work/bad" ]] || { echo "FAIL: a refused sweep created its directory"; exit 1; }
echo "ok: a usage error under mpirun -np 3 is said once, status 2"

# Kill one rank of a 2-rank sweep once two runs are finished; mpirun then ends the other.
long=(--seeds 0-3 --weight-decay 0.3,1 --epochs 40 --no-plot)
"$minmax" sweep "${long[@]}" --out "$work/whole" >/dev/null
"$mpirun" -np 2 "$minmax" sweep "${long[@]}" --out "$work/killed" >"$work/killed.log" 2>&1 &
launcher=$!
for _ in $(seq 1 3000); do
  done_runs=$( (find "$work/killed/runs" -name 'run-*.csv' ! -name '*.tmp.*' 2>/dev/null || true) | wc -l)
  ((done_runs >= 2)) && break
  sleep 0.02
done
rank=$(pgrep -f -- "--out $work/killed" | grep -v "^$launcher\$" | head -1 || true)
[[ -n "$rank" ]] || { echo "FAIL: no rank process found to kill"; cat "$work/killed.log"; exit 1; }
kill -9 "$rank"
if wait "$launcher"; then echo "FAIL: mpirun exited 0 after a rank was killed"; exit 1; fi
kept=$(find "$work/killed/runs" -name 'run-*.csv' ! -name '*.tmp.*' | wc -l)
[[ ! -e "$work/killed/sweep.csv" ]] || { echo "FAIL: sweep.csv written by a killed sweep"; exit 1; }
((kept < 8)) || { echo "FAIL: all runs finished before the kill; nothing to resume"; exit 1; }
"$mpirun" -np 2 "$minmax" sweep --resume "$work/killed" --no-plot >"$work/resumed.log" 2>&1 ||
  { echo "FAIL: resume exited $?"; cat "$work/resumed.log"; exit 1; }
grep -q "($kept finished before)" "$work/resumed.log" || { echo "FAIL: resume did not keep $kept runs"; cat "$work/resumed.log"; exit 1; }
same_files "$work/whole" "$work/killed"
echo "ok: a rank killed after $kept finished runs; --resume ends with the uninterrupted sweep's files"
