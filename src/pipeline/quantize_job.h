#pragma once
// `amlq quantize`: the stages in order, each skipped under --resume when its
// checkpoint exists and was made from the same inputs (recorded hash).
//   <work>/calib.h5      calibrate: Hessians + activation scales
//   <work>/measure.json  measure: the measurement table
//   <work>/plan.json     search: the chosen candidate per linear
//   <out>                pack: the HDF5 model (its header records the plan hash)
//   <work>/fp_eval.json  the FP model's perplexity on --eval data (reused across runs)
#include <string>

#include "backend/backend.h"
#include "core/mpi_comm.h"
#include "pipeline/quantize_options.h"
#include "pipeline/report.h"

namespace amlq {

enum class StageLimit { Calibrate, Measure, Search, Pack, All };

// Runs the stages up to `limit` (the stage subcommands stop early) on every rank
// of `world` (docs/DISTRIBUTED.md). Returns the report on rank 0 (complete only
// for All); other ranks get an empty one.
QuantizeReport run_quantize(Backend& backend, const QuantizeOptions& options, StageLimit limit,
                            const Communicator& world);

// Writes report JSON (atomically) and the SVG next to it; prints nothing.
void write_report_files(const QuantizeOptions& options, const QuantizeReport& report);

}  // namespace amlq
