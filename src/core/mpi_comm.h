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

// Raised on a rank that learns another rank failed; carries that rank's error.
class RemoteFailure : public Error {
 public:
  RemoteFailure(int rank, ErrorKind kind, const std::string& message);
  int failed_rank() const { return rank_; }

 private:
  int rank_;
};

// Every blocking operation below polls: while it waits it also watches for a
// failure notice from any rank (throwing RemoteFailure) and gives up after the
// wait timeout (throwing Distributed), so a failed rank never leaves the others
// hanging. Default timeout: $AMLQ_MPI_TIMEOUT seconds, else 3600.
void set_mpi_wait_timeout(double seconds);
// Largest payload of one MPI call, in bytes: 1 GiB, or $AMLQ_MPI_CHUNK_BYTES
// (tests force tiny chunks so that the chunked paths run in CI).
size_t mpi_chunk_bytes();
double mpi_wait_timeout();

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
  // Every rank's int64 value, in rank order.
  std::vector<int64_t> allgather_sizes(int64_t mine) const;
  // Variable-size gather of byte blobs to root; returns one blob per rank on root.
  std::vector<std::vector<std::byte>> gather_bytes(std::span<const std::byte> mine, int root) const;
  // Every rank gets every rank's blob (any sizes: moved in chunks).
  std::vector<std::vector<std::byte>> allgather_bytes(std::span<const std::byte> mine) const;

  // Tells every other rank that this one failed (non-blocking, best effort).
  void notify_failure(ErrorKind kind, const std::string& message) const;
  // Throws RemoteFailure if a failure notice has arrived.
  void check_failures() const;
  // Waits for a request, watching for failure notices and the timeout.
  void wait(MPI_Request& request, const char* what) const;

 private:
  Communicator(MPI_Comm comm, bool owned);
  MPI_Comm comm_ = MPI_COMM_NULL;
  bool owned_ = false;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace amlq
