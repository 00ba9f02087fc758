#include "core/mpi_comm.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>
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

namespace {
constexpr int kFailureTag = 32001;
constexpr int kGatherTag = 32002;
double g_wait_timeout = -1;
}  // namespace

size_t mpi_chunk_bytes() {
  // MPI counts are int: every payload goes in chunks below 2^31 bytes. A test
  // may force tiny chunks (AMLQ_MPI_CHUNK_BYTES=4096) to exercise the chunked path.
  static const size_t chunk = [] {
    constexpr size_t kDefault = size_t{1} << 30;
    const char* env = std::getenv("AMLQ_MPI_CHUNK_BYTES");
    if (!env || !*env) return kDefault;
    char* end = nullptr;
    const unsigned long long v = std::strtoull(env, &end, 10);
    if (end == env || *end != '\0' || v == 0 || v > kDefault) return kDefault;
    return static_cast<size_t>(v);
  }();
  return chunk;
}

RemoteFailure::RemoteFailure(int rank, ErrorKind kind, const std::string& message)
    : Error(kind, fmt::format("rank {}: {}", rank, message)), rank_(rank) {}

void set_mpi_wait_timeout(double seconds) { g_wait_timeout = seconds; }

double mpi_wait_timeout() {
  if (g_wait_timeout < 0) {
    const char* env = std::getenv("AMLQ_MPI_TIMEOUT");
    g_wait_timeout = env ? std::atof(env) : 3600.0;
    if (g_wait_timeout <= 0) g_wait_timeout = 3600.0;
  }
  return g_wait_timeout;
}

void Communicator::notify_failure(ErrorKind kind, const std::string& message) const {
  // [kind][message bytes]; small enough to go eagerly, so no receiver needs to be waiting.
  std::string payload(1, static_cast<char>(static_cast<int>(kind)));
  payload += message.substr(0, 4000);
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    MPI_Request request;
    if (MPI_Isend(payload.data(), static_cast<int>(payload.size()), MPI_CHAR, r, kFailureTag, comm_, &request) ==
        MPI_SUCCESS)
      MPI_Request_free(&request);
  }
}

void Communicator::check_failures() const {
  int flag = 0;
  MPI_Status status;
  if (MPI_Iprobe(MPI_ANY_SOURCE, kFailureTag, comm_, &flag, &status) != MPI_SUCCESS || !flag) return;
  int count = 0;
  MPI_Get_count(&status, MPI_CHAR, &count);
  std::string payload(static_cast<size_t>(std::max(count, 1)), '\0');
  MPI_Recv(payload.data(), count, MPI_CHAR, status.MPI_SOURCE, kFailureTag, comm_, MPI_STATUS_IGNORE);
  const auto kind = static_cast<ErrorKind>(static_cast<int>(payload[0]));
  throw RemoteFailure(status.MPI_SOURCE, kind, payload.substr(1));
}

void Communicator::wait(MPI_Request& request, const char* what) const {
  const auto start = std::chrono::steady_clock::now();
  auto pause = std::chrono::microseconds(50);
  for (;;) {
    int done = 0;
    AMLQ_CHECK_MPI(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
    if (done) return;
    check_failures();
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (waited > mpi_wait_timeout())
      AMLQ_FAIL(Distributed, "rank {}: {} did not complete within {:.0f} s (another rank stuck or dead?)", rank_, what,
                mpi_wait_timeout());
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(20000));
  }
}

void Communicator::barrier() const {
  MPI_Request request;
  AMLQ_CHECK_MPI(MPI_Ibarrier(comm_, &request));
  wait(request, "barrier");
}

void Communicator::broadcast(std::span<std::byte> data, int root) const {
  for (size_t off = 0; off < data.size(); off += mpi_chunk_bytes()) {
    const int n = static_cast<int>(std::min(mpi_chunk_bytes(), data.size() - off));
    MPI_Request request;
    AMLQ_CHECK_MPI(MPI_Ibcast(data.data() + off, n, MPI_BYTE, root, comm_, &request));
    wait(request, "broadcast");
  }
}

void Communicator::broadcast_string(std::string& s, int root) const {
  uint64_t n = s.size();
  broadcast(std::as_writable_bytes(std::span(&n, 1)), root);
  s.resize(n);
  broadcast(std::as_writable_bytes(std::span(s.data(), s.size())), root);
}

void Communicator::allreduce_sum(std::span<double> data) const {
  const size_t chunk = std::max<size_t>(1, mpi_chunk_bytes() / sizeof(double));
  for (size_t off = 0; off < data.size(); off += chunk) {
    const int n = static_cast<int>(std::min(chunk, data.size() - off));
    MPI_Request request;
    AMLQ_CHECK_MPI(MPI_Iallreduce(MPI_IN_PLACE, data.data() + off, n, MPI_DOUBLE, MPI_SUM, comm_, &request));
    wait(request, "allreduce");
  }
}

void Communicator::send(std::span<const std::byte> data, int dest, int tag) const {
  size_t off = 0;
  do {
    const int n = static_cast<int>(std::min(mpi_chunk_bytes(), data.size() - off));
    MPI_Request request;
    AMLQ_CHECK_MPI(MPI_Isend(data.data() + off, n, MPI_BYTE, dest, tag, comm_, &request));
    wait(request, "send");
    off += static_cast<size_t>(n);
  } while (off < data.size());
}

void Communicator::recv(std::span<std::byte> data, int source, int tag) const {
  size_t off = 0;
  do {
    const int n = static_cast<int>(std::min(mpi_chunk_bytes(), data.size() - off));
    MPI_Request request;
    AMLQ_CHECK_MPI(MPI_Irecv(data.data() + off, n, MPI_BYTE, source, tag, comm_, &request));
    wait(request, "receive");
    off += static_cast<size_t>(n);
  } while (off < data.size());
}

std::vector<int64_t> Communicator::allgather_sizes(int64_t mine) const {
  std::vector<int64_t> sizes(static_cast<size_t>(size_));
  MPI_Request request;
  AMLQ_CHECK_MPI(MPI_Iallgather(&mine, 1, MPI_INT64_T, sizes.data(), 1, MPI_INT64_T, comm_, &request));
  wait(request, "allgather (sizes)");
  return sizes;
}

std::vector<std::vector<std::byte>> Communicator::gather_bytes(std::span<const std::byte> mine, int root) const {
  const auto sizes = allgather_sizes(static_cast<int64_t>(mine.size()));
  std::vector<std::vector<std::byte>> out;
  if (rank_ != root) {
    if (!mine.empty()) send(mine, root, kGatherTag);
    return out;
  }
  out.resize(static_cast<size_t>(size_));
  for (int r = 0; r < size_; ++r) {
    auto& blob = out[static_cast<size_t>(r)];
    blob.resize(static_cast<size_t>(sizes[static_cast<size_t>(r)]));
    if (r == rank_) {
      std::copy(mine.begin(), mine.end(), blob.begin());
    } else if (!blob.empty()) {
      recv(blob, r, kGatherTag);
    }
  }
  return out;
}

std::vector<std::vector<std::byte>> Communicator::allgather_bytes(std::span<const std::byte> mine) const {
  // Rounds of MPI_Iallgatherv, each moving at most one chunk per rank, so no
  // count or displacement ever exceeds the int range whatever the blob sizes.
  const auto sizes = allgather_sizes(static_cast<int64_t>(mine.size()));
  std::vector<std::vector<std::byte>> out(static_cast<size_t>(size_));
  int64_t largest = 0;
  for (int r = 0; r < size_; ++r) {
    out[static_cast<size_t>(r)].resize(static_cast<size_t>(sizes[static_cast<size_t>(r)]));
    largest = std::max(largest, sizes[static_cast<size_t>(r)]);
  }
  const int64_t chunk = static_cast<int64_t>(mpi_chunk_bytes());
  const int64_t per_round = std::max<int64_t>(1, chunk / std::max(1, size_));
  std::vector<int> counts(static_cast<size_t>(size_)), displs(static_cast<size_t>(size_));
  std::vector<std::byte> round;
  for (int64_t offset = 0; offset < largest; offset += per_round) {
    int64_t total = 0;
    for (int r = 0; r < size_; ++r) {
      const int64_t n = std::clamp<int64_t>(sizes[static_cast<size_t>(r)] - offset, 0, per_round);
      counts[static_cast<size_t>(r)] = static_cast<int>(n);
      displs[static_cast<size_t>(r)] = static_cast<int>(total);
      total += n;
    }
    round.resize(static_cast<size_t>(total));
    const int my_count = counts[static_cast<size_t>(rank_)];
    MPI_Request request;
    AMLQ_CHECK_MPI(MPI_Iallgatherv(mine.data() + (my_count ? offset : 0), my_count, MPI_BYTE, round.data(),
                                   counts.data(), displs.data(), MPI_BYTE, comm_, &request));
    wait(request, "allgather");
    for (int r = 0; r < size_; ++r)
      std::copy_n(round.begin() + displs[static_cast<size_t>(r)], counts[static_cast<size_t>(r)],
                  out[static_cast<size_t>(r)].begin() + offset);
  }
  return out;
}

}  // namespace amlq
