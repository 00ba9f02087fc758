#include "core/mpi_comm.h"

#include <utility>

namespace amlq {

std::string StatusTraits<MpiStatus>::describe(MpiStatus s) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(s.code, text, &length) != MPI_SUCCESS) return fmt::format("MPI error {}", s.code);
  return std::string(text, static_cast<size_t>(length));
}

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    AMLQ_CHECK_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    owns_ = true;
    // Errors come back as codes so that AMLQ_CHECK_MPI can turn them into exceptions.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
}

MpiSession::~MpiSession() {
  if (!owns_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void MpiSession::abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();
}

Communicator Communicator::world() { return Communicator(MPI_COMM_WORLD, false); }

Communicator::Communicator(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
  AMLQ_CHECK_MPI(MPI_Comm_rank(comm_, &rank_));
  AMLQ_CHECK_MPI(MPI_Comm_size(comm_, &size_));
}

Communicator::Communicator(Communicator&& other) noexcept
    : comm_(std::exchange(other.comm_, MPI_COMM_NULL)),
      owned_(std::exchange(other.owned_, false)),
      rank_(other.rank_),
      size_(other.size_) {}

Communicator& Communicator::operator=(Communicator&& other) noexcept {
  if (this != &other) {
    if (owned_ && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
    owned_ = std::exchange(other.owned_, false);
    rank_ = other.rank_;
    size_ = other.size_;
  }
  return *this;
}

Communicator::~Communicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owned_ && comm_ != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm_);
}

Communicator Communicator::split(int color, int key) const {
  MPI_Comm out;
  AMLQ_CHECK_MPI(MPI_Comm_split(comm_, color, key, &out));
  return Communicator(out, true);
}

Communicator Communicator::split_node_local() const {
  MPI_Comm out;
  AMLQ_CHECK_MPI(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &out));
  return Communicator(out, true);
}

void Communicator::barrier() const { AMLQ_CHECK_MPI(MPI_Barrier(comm_)); }

namespace {
// MPI counts are int; large buffers go in chunks.
constexpr size_t kMaxChunk = size_t{1} << 30;
}  // namespace

void Communicator::broadcast(std::span<std::byte> data, int root) const {
  for (size_t off = 0; off < data.size(); off += kMaxChunk) {
    const int n = static_cast<int>(std::min(kMaxChunk, data.size() - off));
    AMLQ_CHECK_MPI(MPI_Bcast(data.data() + off, n, MPI_BYTE, root, comm_));
  }
}

void Communicator::broadcast_string(std::string& s, int root) const {
  uint64_t n = s.size();
  AMLQ_CHECK_MPI(MPI_Bcast(&n, 1, MPI_UINT64_T, root, comm_));
  s.resize(n);
  broadcast(std::as_writable_bytes(std::span(s.data(), s.size())), root);
}

void Communicator::allreduce_sum(std::span<double> data) const {
  const size_t chunk = kMaxChunk / sizeof(double);
  for (size_t off = 0; off < data.size(); off += chunk) {
    const int n = static_cast<int>(std::min(chunk, data.size() - off));
    AMLQ_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, data.data() + off, n, MPI_DOUBLE, MPI_SUM, comm_));
  }
}

void Communicator::send(std::span<const std::byte> data, int dest, int tag) const {
  for (size_t off = 0; off < data.size() || off == 0; off += kMaxChunk) {
    const int n = static_cast<int>(std::min(kMaxChunk, data.size() - off));
    AMLQ_CHECK_MPI(MPI_Send(data.data() + off, n, MPI_BYTE, dest, tag, comm_));
    if (data.empty()) break;
  }
}

void Communicator::recv(std::span<std::byte> data, int source, int tag) const {
  for (size_t off = 0; off < data.size() || off == 0; off += kMaxChunk) {
    const int n = static_cast<int>(std::min(kMaxChunk, data.size() - off));
    AMLQ_CHECK_MPI(MPI_Recv(data.data() + off, n, MPI_BYTE, source, tag, comm_, MPI_STATUS_IGNORE));
    if (data.empty()) break;
  }
}

std::vector<std::vector<std::byte>> Communicator::gather_bytes(std::span<const std::byte> mine, int root) const {
  AMLQ_REQUIRE(mine.size() < (size_t{1} << 31), "gather_bytes: blob of {} bytes is too large", mine.size());
  int my_count = static_cast<int>(mine.size());
  std::vector<int> counts(rank_ == root ? size_ : 0);
  AMLQ_CHECK_MPI(MPI_Gather(&my_count, 1, MPI_INT, counts.data(), 1, MPI_INT, root, comm_));
  std::vector<int> displs;
  std::vector<std::byte> all;
  if (rank_ == root) {
    displs.resize(size_);
    int64_t total = 0;
    for (int r = 0; r < size_; ++r) {
      displs[r] = static_cast<int>(total);
      total += counts[r];
    }
    AMLQ_REQUIRE(total < (int64_t{1} << 31), "gather_bytes: {} bytes in total is too large", total);
    all.resize(static_cast<size_t>(total));
  }
  AMLQ_CHECK_MPI(MPI_Gatherv(mine.data(), my_count, MPI_BYTE, all.data(), counts.data(), displs.data(), MPI_BYTE,
                             root, comm_));
  std::vector<std::vector<std::byte>> out;
  if (rank_ == root) {
    for (int r = 0; r < size_; ++r)
      out.emplace_back(all.begin() + displs[r], all.begin() + displs[r] + counts[r]);
  }
  return out;
}

}  // namespace amlq
