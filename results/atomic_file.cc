#include "results/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness/core/text_file.h"

namespace cb {

Status WriteFileAtomically(const std::string& path, const std::string& text) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  if (ec)
    return Status::Internal("cannot create directory " + target.parent_path().string() + ": " +
                            ec.message());
  // The writer's pid in the name: RemoveStaleTemporaries can tell a dead writer's leftover.
  std::string tmp = path + kTempMarker + std::to_string(getpid()) + ".XXXXXX";
  int fd = mkstemp(tmp.data());
  if (fd < 0) return Status::Internal("cannot create " + tmp + ": " + std::strerror(errno));
  size_t written = 0;
  while (written < text.size()) {
    ssize_t n = write(fd, text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string err = std::strerror(errno);
      close(fd);
      unlink(tmp.c_str());
      return Status::Internal("cannot write " + tmp + ": " + err);
    }
    written += static_cast<size_t>(n);
  }
  fchmod(fd, 0644);
  if (fsync(fd) != 0 || close(fd) != 0) {
    unlink(tmp.c_str());
    return Status::Internal("cannot flush " + tmp + ": " + std::strerror(errno));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    unlink(tmp.c_str());
    return Status::Internal("cannot rename " + tmp + " to " + path + ": " + err);
  }
  // The rename is durable only once the directory is.
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd < 0 || fsync(dfd) != 0) {
    const std::string err = std::strerror(errno);
    if (dfd >= 0) close(dfd);
    return Status::Internal("cannot flush directory " + dir + ": " + err);
  }
  close(dfd);
  return Status::Ok();
}

int RemoveStaleTemporaries(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  int removed = 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.rfind(kTempMarker);
    if (at == std::string::npos || !e.is_regular_file(ec)) continue;
    const std::string rest = name.substr(at + std::strlen(kTempMarker));
    const size_t dot = rest.find('.');
    if (dot == std::string::npos || dot == 0 || rest.find_first_not_of("0123456789") < dot)
      continue;
    const pid_t pid = static_cast<pid_t>(std::stol(rest.substr(0, dot)));
    if (pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive, or unknown
    if (fs::remove(e.path(), ec)) ++removed;
  }
  return removed;
}

Status CheckWritableDir(const std::string& dir, const std::string& what) {
  namespace fs = std::filesystem;
  if (dir.empty()) return Status::InvalidInput(what + ": must not be empty");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    return Status::InvalidInput(what + " '" + dir + "': cannot create the directory" +
                                (ec ? ": " + ec.message() : std::string()));
  }
  const std::string probe =
      dir + "/.clusterbench-write-probe" + kTempMarker + std::to_string(getpid()) + ".XXXXXX";
  std::string name = probe;
  const int fd = mkstemp(name.data());
  if (fd < 0) {
    return Status::InvalidInput(what + " '" + dir + "': not writable: " + std::strerror(errno));
  }
  close(fd);
  unlink(name.c_str());
  return Status::Ok();
}

Status ReadFile(const std::string& path, std::string* text) { return ReadTextFile(path, text); }

}  // namespace cb
