#!/bin/bash
# The 1 -> 2 rank benchmark of docs/benchmarks.md (dist section), for an idle machine: an
# evaluation-bound PS search run with 1 rank, then 2 ranks (one thread each), interleaved, REPS
# times per config. Prints per run the wall time and CPU (user + sys of the whole process tree:
# mpirun and every rank) with the tree's minor page faults and involuntary / voluntary context
# switches, per repetition the speed-up and the 2/1 CPU ratio, the 2-rank run's [dist] account
# (per rank: CPU in jobs, the scoring thread's preemptions and faults, the main thread's sleeps),
# and whether both stores hold the same candidates, per-item results and final table (timings
# aside). With PAIR=1 each repetition also runs two single processes started together: what two
# processes scoring on two cores cost over one alone (the chip's share of the 2/1 CPU ratio).
#
# usage: tools/dist/bench_ranks.sh BINARY [BENCH_DIR] [REPS] [CONFIGS]
#   BENCH_DIR: holds bench.yml, bench_big.yml, jm.yaml, jm.opt.jsonl, jm.test.jsonl
#              (default /tmp/evo/bench); runs go to a fresh folder under /tmp, printed first.
#   REPS: default 3.  CONFIGS: default "bench.yml bench_big.yml".
#   PAIR=1: also the two single processes together.  MCA: mpirun's MCA options (below).
set -u
BIN=$(realpath "${1:?usage: bench_ranks.sh BINARY [BENCH_DIR] [REPS] [CONFIGS]}")
SRC=${2:-/tmp/evo/bench}
REPS=${3:-3}
CONFIGS=${4:-bench.yml bench_big.yml}
# Shared memory only, and ob1 named so that MPI_Init does not probe libfabric first (~0.2 s of
# start-up on the 2-core VM; ob1 is what OpenMPI picks here anyway). MCA=... overrides it.
MCA=${MCA:---mca pml ob1 --mca btl self,vader}
WORK=$(mktemp -d /tmp/evomerge-ranks-XXXXXX)
cp "$SRC"/{bench.yml,bench_big.yml,jm.yaml,jm.opt.jsonl,jm.test.jsonl} "$WORK"/ || exit 1
cd "$WORK" || exit 1
echo "runs in $WORK, binary $BIN, mpirun $MCA"
Q="select phase,generation,idx,genome,params,task_scores,fitness,status from candidate;
   select candidate_id,task,split,hex(items),hex(scores) from item_result;
   select label,split,task_scores,score,ci_low,ci_high,details from final_result;
   select final_id,task,split,hex(items),hex(scores) from final_item_result;"
for cfg in $CONFIGS; do
  for rep in $(seq 1 "$REPS"); do
    for n in 1 2; do
      d=${cfg%.yml}_${n}_$rep
      load=$(cut -d' ' -f1 /proc/loadavg)
      if [ "$n" = 1 ]; then
        /usr/bin/time -f "%e %U %S %R %c %w" "$BIN" evolve "$cfg" --run "$d" > "$d.log" 2>&1
      else
        /usr/bin/time -f "%e %U %S %R %c %w" mpirun --oversubscribe --allow-run-as-root $MCA \
          -np 2 "$BIN" evolve "$cfg" --run "$d" > "$d.log" 2>&1
      fi
      read -r w u s f ic vc <<< "$(tail -1 "$d.log")"
      c=$(echo "$u + $s" | bc)
      eval "w$n=$w c$n=$c"
      echo "$cfg rep $rep ranks $n load_before $load wall $w s cpu $c s (user $u, sys $s)" \
        "minflt $f invol $ic vol $vc"
    done
    if [ "${PAIR:-0}" = 1 ]; then
      d=${cfg%.yml}_pair_$rep
      load=$(cut -d' ' -f1 /proc/loadavg)
      for x in a b; do
        /usr/bin/time -f "%e %U %S %R %c %w" "$BIN" evolve "$cfg" --run "$d$x" > "$d$x.log" 2>&1 &
      done
      wait
      read -r wa ua sa _ <<< "$(tail -1 "${d}a.log")"
      read -r wb ub sb _ <<< "$(tail -1 "${d}b.log")"
      ca=$(echo "$ua + $sa" | bc) cb=$(echo "$ub + $sb" | bc)
      echo "$cfg rep $rep two single processes together: load_before $load wall $wa / $wb s" \
        "cpu $ca / $cb s, mean / alone $(echo "scale=3; ($ca + $cb) / 2 / $c1" | bc)"
    fi
    echo "$cfg rep $rep speed-up $(echo "scale=3; $w1 / $w2" | bc)x cpu 2/1 $(echo "scale=3; $c2 / $c1" | bc)"
    grep '\[dist\] rank\|CPU of all' "${cfg%.yml}_2_$rep.log" | sed 's/^/    /'
    a=$(sqlite3 "${cfg%.yml}_1_$rep/run.db" "$Q" | md5sum)
    b=$(sqlite3 "${cfg%.yml}_2_$rep/run.db" "$Q" | md5sum)
    if [ "$a" = "$b" ]; then echo "    stores identical"; else echo "    STORES DIFFER"; fi
  done
done
