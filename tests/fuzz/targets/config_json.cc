// config.json, then what inspect and every stage derive from it.
#include "io/model_config.h"
#include "tests/fuzz/fuzz_target.h"

namespace amlq {

AMLQ_FUZZ_TARGET(config_json, ErrorKind::Input) {
  const ModelConfig c = parse_model_config(std::string(fuzz::text(input)), "config.json");
  for (const auto& l : decoder_linears(c))
    AMLQ_FUZZ_CHECK(l.rows > 0 && l.cols > 0 && l.numel() > 0, "{} is {} x {}", l.name, l.rows, l.cols);
  const ParameterCount p = count_parameters(c);
  AMLQ_FUZZ_CHECK(p.total() > 0 && p.quantized() > 0 && p.total() >= p.quantized(), "total {} quantized {}",
                  p.total(), p.quantized());
  (void)linear_weight_name(c.num_layers - 1, decoder_linears(c).back().name);
}

}  // namespace amlq
