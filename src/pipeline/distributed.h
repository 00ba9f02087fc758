#pragma once
// What ranks exchange (docs/DISTRIBUTED.md): hidden states between pipeline
// stages, Hessian tree nodes between replicas, measurement rows and linear
// layouts to the coordinator and back, and the parallel HDF5 write.
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/matrix.h"
#include "core/mpi_comm.h"
#include "io/hdf5/model_writer.h"
#include "io/hdf5/quantized_model.h"
#include "model/layer_statistics.h"

namespace amlq {

// Hidden states of one micro-batch, stage to stage (same replica).
void send_matrix(const Communicator& comm, const MatrixF& m, int dest, int tag);
MatrixF recv_matrix(const Communicator& comm, int source, int tag);

// Every replica of a stage ends with the identical merged statistics: the
// replicas' tree nodes are exchanged and merged in replica (= sample block) order.
// `replicas` holds the ranks of one stage, ranked by replica index.
void merge_replica_statistics(const Communicator& replicas, LayerStatistics& stats);
void merge_replica_statistics(const Communicator& replicas, HessianAccumulator& acc);

std::vector<std::byte> serialize_nodes(const std::vector<HessianAccumulator::Node>& nodes);
std::vector<HessianAccumulator::Node> deserialize_nodes(std::span<const std::byte> bytes);

// A linear's metadata (everything but its tensors), as exchanged before the
// collective creation of the HDF5 layout; also enough for the report.
nlohmann::json linear_metadata(const PackedLinear& linear);
PackedLinear linear_from_metadata(const nlohmann::json& j);  // tensors left empty
// The HDF5 layout of a linear known only by its metadata.
h5::LinearLayout layout_of_metadata(const PackedLinear& linear);

// A packed linear (metadata and tensors) as one message, for exchanging the
// packed layers between the replicas of a stage.
std::vector<std::byte> serialize_packed_linear(const PackedLinear& linear);
PackedLinear deserialize_packed_linear(std::span<const std::byte> bytes);

// Every rank calls this with the same layout; each writes its own linears and
// passthrough tensors. Rank 0 renames the finished file into place. The second
// form asks for its linears one at a time (they are read from the per-layer pack
// checkpoints, so a rank never holds more than one).
void write_model_parallel(const Communicator& world, const std::string& final_path, const h5::ModelLayout& layout,
                          int my_linear_count, const std::function<PackedLinear(int)>& my_linear,
                          const std::vector<PassthroughTensor>& my_passthrough);
void write_model_parallel(const Communicator& world, const std::string& final_path, const h5::ModelLayout& layout,
                          const std::vector<PackedLinear>& my_linears,
                          const std::vector<PassthroughTensor>& my_passthrough);

}  // namespace amlq
