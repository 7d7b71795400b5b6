#pragma once

#include <memory>
#include <string>

#include "backends/comm/communicator.h"

namespace cb {

/// The processes of this job. Started by a launcher (mpirun, srun, mpiexec: detected from its
/// environment variables), it initialises MPI; otherwise it is a world of one rank that never
/// touches MPI, so a plain `clusterbench run` has no MPI overhead or dependency at run time.
class World {
 public:
  /// Call once at start-up. `collective_timeout_s` bounds every collective of every group.
  static Status Init(int* argc, char*** argv, double collective_timeout_s);
  static World& Get();

  bool mpi() const { return mpi_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& host() const { return host_; }
  void set_collective_timeout(double seconds);

  /// All ranks.
  Communicator& world() { return *world_; }
  /// A sub-group: ranks with the same `color`, ordered by `key`. Collective over the world.
  Status Split(int color, int key, std::unique_ptr<Communicator>* out);

  /// Tells every other rank that this one failed with `message` (their collectives then
  /// return errors instead of waiting). Safe to call more than once.
  void NotifyFailure(const std::string& message);

  /// Ends the whole job with `code` after a failure. On rank 0 it prints nothing (the caller
  /// printed the one clear error) and aborts every rank; on other ranks it waits a bounded
  /// time for rank 0 to do so, then exits.
  [[noreturn]] void AbortJob(int code);

  /// Clean shutdown (MPI_Finalize) after success.
  void Finalize();

 private:
  World() = default;
  bool mpi_ = false;
  int rank_ = 0, size_ = 1;
  std::string host_;
  std::unique_ptr<Communicator> world_;
};

/// True when this process was started by an MPI launcher.
bool LaunchedByMpi();

}  // namespace cb
