#pragma once
// Loss sensitivity of every quantized linear (METHOD.md 7, loss-weighted
// min-sum; ../shared/docs/METHOD.md): how much the model's mean token NLL rises
// per unit of a linear's normalized error eps. The search then minimizes
// sum_l alpha_l * eps_l, the "linearity theorem" model of Malinovskii et al.
// 2024 (HIGGS).
//
// Probe of one linear: on a few held-out calibration windows, its weights get
// Gaussian noise D (each row scaled by the RMS of that row's weights, like a
// quantization error) and its output the resulting X D^T, scaled to exactly the
// energy e * ||W X||^2 on those tokens: the normalized error eps = e that a
// quantization error of that energy has. Four variants run as one
// batch: +N and -N (antithetic: the first-order term g.N cancels exactly, which
// with one noise draw would otherwise dominate), each at energies e1 and e2 with
// the same draw N. The mean-NLL increases d1, d2 give the least-squares slope
// through the origin, alpha = (e1 d1 + e2 d2) / (e1^2 + e2^2), and the check of
// linearity (d2 / e2) / (d1 / e1).
//
// Distribution: the stage that owns a linear runs its probe from the FP input of
// its layer and forwards it through its later layers; the next stages forward it
// on (in chunks, each layer loaded once per chunk) and the last stage scores it.
// Replica 0 of each stage does the work. Every probe is computed alone, in the
// same shapes, so the result does not depend on the rank layout.
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "io/tokenizer/dataset.h"
#include "model/model_weights.h"
#include "pipeline/layer_passes.h"

namespace amlq {

// The two noise energies (normalized eps) of every probe: the range the search
// works in (4-bit candidates ~0.003, 2-bit ones ~0.05).
inline constexpr double kProbeEnergies[2] = {0.01, 0.04};

// Variants per probe: (+N, e1), (-N, e1), (+N, e2), (-N, e2).
inline constexpr int kProbeVariants = 4;

// How many probes a stage forwards together (each of its layers is loaded once
// per chunk): as many as fit in 1 GiB of hidden states, between 1 and 64. A
// stage holds at most about a chunk plus one layer's linears of probes
// (pipeline/resources.cc predicts that phase).
int probes_per_chunk(const ModelConfig& config, int windows, int seqlen);

struct SensitivityResult {
  std::vector<double> alpha;      // per linear (table order: layer-major, decoder_linears order)
  std::vector<double> linearity;  // per linear
  double fp_nll = 0;              // mean token NLL of the FP model on the probe windows
  int floored = 0;                // alphas raised to the floor (probe noise made them <= 0)
};

// `windows` held-out windows of the calibration's seqlen: the draws that follow
// the calibration's own (random offsets: the next draws of the same generator;
// consecutive windows: the windows after them). Usage error when the data has
// too few.
std::vector<std::vector<int32_t>> probe_windows(std::span<const int32_t> ids, const CalibrationSpec& calib,
                                                int windows);
// `windows` held-out windows of `seqlen` ids (0: the calibration's) drawn
// after the calibration's own and `skip` more (the probes'), so that two
// held-out sets do not share draws. `option` names the flag that asked for
// them in the Usage errors.
std::vector<std::vector<int32_t>> held_out_windows(std::span<const int32_t> ids, const CalibrationSpec& calib,
                                                   int skip, int windows, std::string_view option, int seqlen = 0);

// `windows` windows of `seqlen` ids from a held-out file of its own
// (--validate-data): random offsets drawn with the calibration's seed, or
// consecutive windows from the start when the calibration's are. Input error
// naming `origin` (the file) when it holds too few ids.
std::vector<std::vector<int32_t>> separate_windows(std::span<const int32_t> ids, const CalibrationSpec& calib,
                                                   int windows, int seqlen, const std::string& origin);

// Mean token NLL of each of `blocks` consecutive blocks of windows.size()
// sequences (each of windows' length) in `hidden` (final norm + head of `head`), on the last stage.
std::vector<double> block_nll(const PassContext& ctx, const ModelWeights& head, const MatrixF& hidden, int blocks,
                              const std::vector<std::vector<int32_t>>& windows);

// Collective over ctx.world. `windows` (their ids) is needed on the first and
// the last stage's replica 0 only. Returns the same result on every rank.
SensitivityResult sensitivity_pass(PassContext& ctx, const std::vector<std::vector<int32_t>>& windows);

// alpha and the linearity check from the antithetic mean increases at the two energies.
struct ProbeSlope {
  double alpha = 0;
  double linearity = 0;
};
ProbeSlope probe_slope(double increase_low, double increase_high);

}  // namespace amlq
