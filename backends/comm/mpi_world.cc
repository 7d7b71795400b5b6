#include "backends/comm/mpi_world.h"

#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "backends/comm/mpi_communicator.h"

namespace cb {

bool LaunchedByMpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"}) {
    if (std::getenv(var)) return true;
  }
  return false;
}

World& World::Get() {
  static World world;
  return world;
}

Status World::Init(int* argc, char*** argv, double collective_timeout_s) {
  World& w = Get();
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  w.host_ = host;
  if (!LaunchedByMpi()) {
    w.world_ = std::make_unique<SingleRankCommunicator>();
    return Status::Ok();
  }
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    return Status::Internal("MPI_Init_thread failed");
  }
  w.mpi_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &w.rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &w.size_);
  MpiFailureChannel::Init();
  MPI_Comm dup;
  MPI_Comm_dup(MPI_COMM_WORLD, &dup);
  w.world_ = std::make_unique<MpiCommunicator>(dup, collective_timeout_s);
  return Status::Ok();
}

void World::set_collective_timeout(double seconds) {
  if (auto* m = dynamic_cast<MpiCommunicator*>(world_.get())) m->set_timeout(seconds);
}

Status World::Split(int color, int key, std::unique_ptr<Communicator>* out) {
  if (!mpi_) {
    *out = std::make_unique<SingleRankCommunicator>();
    return Status::Ok();
  }
  auto* parent = static_cast<MpiCommunicator*>(world_.get());
  MPI_Comm sub;
  if (MPI_Comm_split(parent->comm(), color, key, &sub) != MPI_SUCCESS) {
    return Status::Internal("MPI_Comm_split failed");
  }
  *out = std::make_unique<MpiCommunicator>(sub, parent->timeout());
  return Status::Ok();
}

void World::NotifyFailure(const std::string& message) {
  if (mpi_) MpiFailureChannel::Notify(rank_, size_, message);
}

void World::AbortJob(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (!mpi_) std::exit(code);
  if (rank_ == 0) MPI_Abort(MPI_COMM_WORLD, code);
  // Rank 0 learns of the failure at its next collective and aborts the job; bound the wait.
  std::this_thread::sleep_for(std::chrono::seconds(20));
  _exit(code);
}

void World::Finalize() {
  if (!mpi_) return;
  world_.reset();
  MPI_Finalize();
  mpi_ = false;
}

}  // namespace cb
