#pragma once
// The work directory of a quantize run (default <out>.work/). Its size does not
// grow with layers x Hessian size: statistics live in memory one decoder layer
// at a time and only small per-layer results are kept (docs/DISTRIBUTED.md).
//   measure/layer_NNNNN.json          measurement rows of one decoder layer
//   measure.json                      the whole measurement table (rank 0)
//   sensitivity.json                  loss sensitivity per linear (rank 0)
//   plan.json                         the search result
//   pack/layer_NNNNN.h5 (+ .seal.json) the packed linears of one layer (removed
//                                     once the output file is complete)
//   pack/candidate-K/layer_NNNNN.h5    the same for plan K > 0 of a validation
//                                     (--validate-windows; plan 0, the search's
//                                     own, is in pack/; removed likewise)
//   validation.json                   each candidate plan's held-out NLL (rank 0)
//   calib/layer_NNNNN.h5 (+ .seal.json) statistics, only from `amlq calibrate`
//   fp_eval.json                      FP perplexity on --eval data
#include <cstdint>
#include <string>

namespace amlq {

struct WorkDir {
  std::string root;
  // Where pack_layer() puts a layer's packed linears, under root.
  std::string pack_folder = "pack";

  std::string measure_layer(int layer) const;
  std::string pack_layer(int layer) const;
  std::string calib_layer(int layer) const;
  std::string measure_table() const { return root + "/measure.json"; }
  std::string sensitivity() const { return root + "/sensitivity.json"; }
  std::string plan() const { return root + "/plan.json"; }
  std::string fp_eval() const { return root + "/fp_eval.json"; }
  std::string validation() const { return root + "/validation.json"; }
  // The same work directory with pack_layer() under pack/candidate-K (K > 0;
  // candidate 0, the search's own plan, packs where an unvalidated run does).
  WorkDir for_candidate(int k) const;
  // Creates root and its subfolders (Output error naming the folder on failure).
  void create() const;
  // Deletes the temporaries (NAME.tmp.PID) a killed process left under root;
  // returns how many. Only safe before any rank of this run writes (the
  // coordinator calls it before the run's first barrier).
  int remove_temporaries() const;
  // Bytes of every file under root (0 when it does not exist).
  int64_t bytes() const;
};

}  // namespace amlq
