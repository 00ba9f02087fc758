#pragma once
// A small RAII layer over MPI. MPI is always on: a plain `amlq` is a singleton
// rank. Only pipeline/ code talks to other ranks; everything else is rank-free.
#include <mpi.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/check.h"

namespace amlq {

struct MpiStatus {
  int code;
};
template <>
struct StatusTraits<MpiStatus> {
  static bool ok(MpiStatus s) { return s.code == MPI_SUCCESS; }
  static std::string describe(MpiStatus s);
  static constexpr ErrorKind kind = ErrorKind::Distributed;
  static constexpr const char* library = "MPI";
};

// Initializes MPI (thread level FUNNELED) on construction, finalizes on destruction.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  // Ends every rank of the job: the last resort when a rank cannot report its error.
  [[noreturn]] static void abort(int code);

 private:
  bool owns_ = false;
};

class Communicator {
 public:
  // Wraps MPI_COMM_WORLD (not owned).
  static Communicator world();
  // Splits into sub-communicators by color (owned, freed on destruction).
  Communicator split(int color, int key) const;
  // Ranks sharing this node: the GPU a rank uses is its node-local rank.
  Communicator split_node_local() const;

  Communicator(Communicator&& other) noexcept;
  Communicator& operator=(Communicator&& other) noexcept;
  ~Communicator();

  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm handle() const { return comm_; }

  void barrier() const;
  void broadcast(std::span<std::byte> data, int root) const;
  void broadcast_string(std::string& s, int root) const;
  // Element-wise sum of doubles across ranks, in place.
  void allreduce_sum(std::span<double> data) const;
  void send(std::span<const std::byte> data, int dest, int tag) const;
  void recv(std::span<std::byte> data, int source, int tag) const;
  // Variable-size gather of byte blobs to root; returns one blob per rank on root.
  std::vector<std::vector<std::byte>> gather_bytes(std::span<const std::byte> mine, int root) const;

 private:
  Communicator(MPI_Comm comm, bool owned);
  MPI_Comm comm_ = MPI_COMM_NULL;
  bool owned_ = false;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace amlq
