#include "pipeline/distributed.h"

#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/hdf5/hdf5_check.h"

namespace amlq {

void send_matrix(const Communicator& comm, const MatrixF& m, int dest, int tag) {
  const int64_t dims[2] = {m.rows(), m.cols()};
  comm.send(std::as_bytes(std::span(dims, 2)), dest, tag);
  comm.send(std::as_bytes(std::span(m.data(), static_cast<size_t>(m.size()))), dest, tag);
}

MatrixF recv_matrix(const Communicator& comm, int source, int tag) {
  int64_t dims[2] = {0, 0};
  comm.recv(std::as_writable_bytes(std::span(dims, 2)), source, tag);
  MatrixF m(dims[0], dims[1]);
  comm.recv(std::as_writable_bytes(std::span(m.data(), static_cast<size_t>(m.size()))), source, tag);
  return m;
}

namespace {

template <typename T>
void append(std::vector<std::byte>& out, const T* data, size_t n) {
  const size_t at = out.size();
  out.resize(at + n * sizeof(T));
  if (n > 0) std::memcpy(out.data() + at, data, n * sizeof(T));
}

template <typename T>
void take(std::span<const std::byte>& in, T* data, size_t n) {
  const size_t bytes = n * sizeof(T);
  AMLQ_ASSERT(in.size() >= bytes, "truncated node message ({} bytes left, {} needed)", in.size(), bytes);
  if (bytes > 0) std::memcpy(data, in.data(), bytes);  // an empty vector's data() may be null
  in = in.subspan(bytes);
}

}  // namespace

std::vector<std::byte> serialize_nodes(const std::vector<HessianAccumulator::Node>& nodes) {
  std::vector<std::byte> out;
  const int64_t count = static_cast<int64_t>(nodes.size());
  append(out, &count, 1);
  for (const auto& node : nodes) {
    const int64_t header[4] = {node.begin_block, node.end_block, node.tokens, node.h.rows()};
    append(out, header, 4);
    append(out, node.h.data(), static_cast<size_t>(node.h.size()));
    append(out, node.abs_sum.data(), static_cast<size_t>(node.abs_sum.size()));
  }
  return out;
}

std::vector<HessianAccumulator::Node> deserialize_nodes(std::span<const std::byte> in) {
  int64_t count = 0;
  take(in, &count, 1);
  std::vector<HessianAccumulator::Node> nodes(static_cast<size_t>(count));
  for (auto& node : nodes) {
    int64_t header[4];
    take(in, header, 4);
    node.begin_block = header[0];
    node.end_block = header[1];
    node.tokens = header[2];
    node.h.resize(header[3], header[3]);
    node.abs_sum.resize(header[3]);
    take(in, node.h.data(), static_cast<size_t>(node.h.size()));
    take(in, node.abs_sum.data(), static_cast<size_t>(node.abs_sum.size()));
  }
  return nodes;
}

void merge_replica_statistics(const Communicator& replicas, HessianAccumulator& acc) {
  if (replicas.size() == 1) return;
  // Node by node, in replica (= sample block) order: every replica pushes the same
  // nodes in the same order, so all end with the single-process sums. Only one
  // node is in flight at a time (no serialized copy of a whole layer).
  std::vector<HessianAccumulator::Node> mine = acc.take_nodes();
  HessianAccumulator merged;
  for (int q = 0; q < replicas.size(); ++q) {
    const bool root = q == replicas.rank();
    int64_t count = root ? static_cast<int64_t>(mine.size()) : 0;
    replicas.broadcast(std::as_writable_bytes(std::span(&count, 1)), q);
    for (int64_t i = 0; i < count; ++i) {
      HessianAccumulator::Node node;
      if (root) node = std::move(mine[static_cast<size_t>(i)]);
      int64_t header[4] = {node.begin_block, node.end_block, node.tokens, node.h.rows()};
      replicas.broadcast(std::as_writable_bytes(std::span(header, 4)), q);
      if (!root) {
        node.begin_block = header[0];
        node.end_block = header[1];
        node.tokens = header[2];
        node.h.resize(header[3], header[3]);
        node.abs_sum.resize(header[3]);
      }
      replicas.broadcast(std::as_writable_bytes(std::span(node.h.data(), static_cast<size_t>(node.h.size()))), q);
      replicas.broadcast(
          std::as_writable_bytes(std::span(node.abs_sum.data(), static_cast<size_t>(node.abs_sum.size()))), q);
      std::vector<HessianAccumulator::Node> one;
      one.push_back(std::move(node));
      merged.merge(std::move(one));
    }
  }
  acc = std::move(merged);
}

void merge_replica_statistics(const Communicator& replicas, LayerStatistics& stats) {
  for (auto& acc : stats.per_site) merge_replica_statistics(replicas, acc);
}

nlohmann::json linear_metadata(const PackedLinear& l) {
  nlohmann::json parts = nlohmann::json::array();
  for (const auto& p : l.parts) parts.push_back({p.col_begin, p.col_end, p.bits, p.group, p.num_groups});
  nlohmann::json spec_parts = nlohmann::json::array();
  for (const auto& p : l.spec.parts) spec_parts.push_back({p.bits, p.group, p.fraction});
  return {{"name", l.name},
          {"rows", l.rows},
          {"cols", l.cols},
          {"spec_parts", spec_parts},
          {"symmetric", l.spec.symmetric},
          {"act_order", l.spec.act_order},
          {"static_groups", l.spec.static_groups},
          {"has_perm", !l.perm.empty()},
          {"parts", parts},
          {"lowrank", static_cast<int>(l.lowrank)},
          {"factor_format", static_cast<int>(l.factor_format)},
          {"rank", l.rank},
          {"has_bias", !l.bias.empty()},
          {"eps", l.eps},
          {"bpw", l.bpw}};
}

PackedLinear linear_from_metadata(const nlohmann::json& j) {
  PackedLinear l;
  l.name = j.at("name").get<std::string>();
  l.rows = j.at("rows").get<int>();
  l.cols = j.at("cols").get<int>();
  l.spec.parts.clear();
  for (const auto& p : j.at("spec_parts"))
    l.spec.parts.push_back({p.at(0).get<int>(), p.at(1).get<int>(), p.at(2).get<double>()});
  l.spec.symmetric = j.at("symmetric").get<bool>();
  l.spec.act_order = j.at("act_order").get<bool>();
  l.spec.static_groups = j.at("static_groups").get<bool>();
  if (j.at("has_perm").get<bool>()) l.perm.resize(static_cast<size_t>(l.cols));
  for (const auto& p : j.at("parts")) {
    PackedPart part;
    part.col_begin = p.at(0).get<int>();
    part.col_end = p.at(1).get<int>();
    part.bits = p.at(2).get<int>();
    part.group = p.at(3).get<int>();
    part.num_groups = p.at(4).get<int>();
    l.parts.push_back(part);
  }
  l.lowrank = static_cast<LowRankMethod>(j.at("lowrank").get<int>());
  l.factor_format = static_cast<FactorFormat>(j.at("factor_format").get<int>());
  l.rank = j.at("rank").get<int>();
  if (j.at("has_bias").get<bool>()) l.bias.resize(static_cast<size_t>(l.rows));
  l.eps = j.at("eps").get<double>();
  l.bpw = j.at("bpw").get<double>();
  return l;
}

namespace {

template <typename T>
void append_vector(std::vector<std::byte>& out, const std::vector<T>& v) {
  const uint64_t n = v.size();
  append(out, &n, 1);
  append(out, v.data(), v.size());
}

template <typename T>
void take_vector(std::span<const std::byte>& in, std::vector<T>& v) {
  uint64_t n = 0;
  take(in, &n, 1);
  AMLQ_ASSERT(n <= in.size() / std::max<size_t>(1, sizeof(T)), "packed linear message: {} elements in {} bytes", n,
              in.size());
  v.resize(static_cast<size_t>(n));
  take(in, v.data(), v.size());
}

}  // namespace

std::vector<std::byte> serialize_packed_linear(const PackedLinear& l) {
  std::vector<std::byte> out;
  const std::string meta = linear_metadata(l).dump();
  const uint64_t meta_len = meta.size();
  append(out, &meta_len, 1);
  append(out, meta.data(), meta.size());
  append_vector(out, l.perm);
  for (const auto& p : l.parts) {
    append_vector(out, p.codes);
    append_vector(out, p.scales);
    append_vector(out, p.zeros);
  }
  append_vector(out, l.a_fp16);
  append_vector(out, l.b_fp16);
  append_vector(out, l.a_int8);
  append_vector(out, l.a_scales);
  append_vector(out, l.b_int8);
  append_vector(out, l.b_scales);
  append_vector(out, l.bias);
  return out;
}

PackedLinear deserialize_packed_linear(std::span<const std::byte> in) {
  uint64_t meta_len = 0;
  take(in, &meta_len, 1);
  AMLQ_ASSERT(meta_len <= in.size(), "packed linear message: metadata of {} bytes in {}", meta_len, in.size());
  std::string meta(static_cast<size_t>(meta_len), '\0');
  take(in, meta.data(), meta.size());
  PackedLinear l = linear_from_metadata(nlohmann::json::parse(meta));
  take_vector(in, l.perm);
  for (auto& p : l.parts) {
    take_vector(in, p.codes);
    take_vector(in, p.scales);
    take_vector(in, p.zeros);
  }
  take_vector(in, l.a_fp16);
  take_vector(in, l.b_fp16);
  take_vector(in, l.a_int8);
  take_vector(in, l.a_scales);
  take_vector(in, l.b_int8);
  take_vector(in, l.b_scales);
  take_vector(in, l.bias);
  AMLQ_ASSERT(in.empty(), "packed linear message: {} trailing bytes", in.size());
  return l;
}

h5::LinearLayout layout_of_metadata(const PackedLinear& l) {
  h5::LinearLayout out;
  out.name = l.name;
  out.rows = l.rows;
  out.cols = l.cols;
  out.spec = l.spec;
  out.has_perm = !l.perm.empty();
  for (const auto& p : l.parts) out.parts.push_back({p.col_begin, p.col_end, p.bits, p.group, p.num_groups});
  out.lowrank = l.lowrank;
  out.factor_format = l.factor_format;
  out.rank = l.rank;
  out.has_bias = !l.bias.empty();
  out.eps = l.eps;
  out.bpw = l.bpw;
  return out;
}

void write_model_parallel(const Communicator& world, const std::string& final_path, const h5::ModelLayout& layout,
                          const std::vector<PackedLinear>& my_linears,
                          const std::vector<PassthroughTensor>& my_passthrough) {
  write_model_parallel(
      world, final_path, layout, static_cast<int>(my_linears.size()),
      [&](int i) { return my_linears[static_cast<size_t>(i)]; }, my_passthrough);
}

void write_model_parallel(const Communicator& world, const std::string& final_path, const h5::ModelLayout& layout,
                          int my_linear_count, const std::function<PackedLinear(int)>& my_linear,
                          const std::vector<PassthroughTensor>& my_passthrough) {
  // One temporary name for all ranks, chosen by rank 0.
  std::string temp = world.rank() == 0 ? final_path + ".tmp." + std::to_string(::getpid()) : "";
  world.broadcast_string(temp, 0);
  bool committed = false;
  try {
    h5::PropertyList fapl(AMLQ_HDF5_ID(H5Pcreate(H5P_FILE_ACCESS)));
    AMLQ_CHECK_HDF5(H5Pset_fapl_mpio(fapl.get(), world.handle(), MPI_INFO_NULL));
    h5::File file = h5::create_model_file(temp, fapl.get());
    h5::create_layout(file.get(), layout);
    h5::PropertyList dxpl(AMLQ_HDF5_ID(H5Pcreate(H5P_DATASET_XFER)));
    AMLQ_CHECK_HDF5(H5Pset_dxpl_mpio(dxpl.get(), H5FD_MPIO_INDEPENDENT));
    for (int i = 0; i < my_linear_count; ++i) h5::write_linear(file.get(), my_linear(i), dxpl.get());
    for (const auto& t : my_passthrough) h5::write_passthrough(file.get(), t, dxpl.get());
    file.close();
    world.barrier();
    if (world.rank() == 0) {
      if (std::rename(temp.c_str(), final_path.c_str()) != 0)
        AMLQ_FAIL(Output, "{}: cannot rename {} into place: {}", final_path, temp, std::strerror(errno));
    }
    committed = true;
    world.barrier();
  } catch (...) {
    if (!committed && world.rank() == 0) std::remove(temp.c_str());
    throw;
  }
}

}  // namespace amlq
