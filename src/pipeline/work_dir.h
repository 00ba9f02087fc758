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
//   calib/layer_NNNNN.h5 (+ .seal.json) statistics, only from `amlq calibrate`
//   fp_eval.json                      FP perplexity on --eval data
#include <cstdint>
#include <string>

namespace amlq {

struct WorkDir {
  std::string root;

  std::string measure_layer(int layer) const;
  std::string pack_layer(int layer) const;
  std::string calib_layer(int layer) const;
  std::string measure_table() const { return root + "/measure.json"; }
  std::string sensitivity() const { return root + "/sensitivity.json"; }
  std::string plan() const { return root + "/plan.json"; }
  std::string fp_eval() const { return root + "/fp_eval.json"; }
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
