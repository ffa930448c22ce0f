// `evomerge evolve` spread over MPI ranks: `mpirun -np N evomerge evolve CONFIG --run DIR` (or srun
// under Slurm). Every rank builds the same SearchContext from the config and loads the models once;
// rank 0 also owns the optimiser, the run store and the outputs (run_evolve_with) and hands out
// scoring jobs (evolve/work.h: one candidate x task x item batch) to whichever rank asks, scoring
// jobs itself in between. Jobs are pure, so the store's results are byte-identical for any N.
// docs/distributed.md: launching, sizing, faults.
#pragma once

#include <string>

#include "evolve/evolve_config.h"
#include "evolve/evolve_run.h"

namespace evomerge {

// The number of ranks an MPI launcher started this process with (from its environment: OpenMPI,
// PMI, PMIx, Slurm); 1 when not launched by one.
int launcher_world_size();

// Whether this binary was built with MPI.
bool mpi_available();

// Runs the evolve command as one rank of the MPI job. Rank 0 returns the run's summary; the other
// ranks return an empty summary after rank 0 ends the job. When a rank cannot build the search
// context, rank 0 throws Error with one line per failed rank (its host and the reason) before
// anything is scored or written, and the other ranks return `stopped`. Throws without MPI.
struct DistributedResult {
  int rank = 0;
  int ranks = 1;
  bool stopped = false;   // not rank 0: the run did not start (rank 0 says why)
  EvolveSummary summary;  // rank 0 only
};
DistributedResult run_evolve_mpi(const EvolveConfig& config, const EvolveRunOptions& options);

}  // namespace evomerge
