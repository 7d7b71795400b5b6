#include "harness/cli/output.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

namespace cb {
namespace {

std::map<const CLI::App*, std::shared_ptr<OutputFlags>>& Registry() {
  static std::map<const CLI::App*, std::shared_ptr<OutputFlags>> registry;
  return registry;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

std::shared_ptr<OutputFlags> AddOutputFlags(CLI::App* cmd, std::vector<std::string> formats,
                                            const std::string& fallback) {
  auto f = std::make_shared<OutputFlags>();
  f->formats = std::move(formats);
  f->format = fallback;
  if (!f->formats.empty()) {
    const std::vector<std::string> allowed = f->formats;
    cmd->add_option("--format", f->format, "Output format: " + Join(allowed))
        ->default_val(fallback)
        ->check(CLI::Validator(
            [allowed](std::string& v) -> std::string {
              for (const std::string& a : allowed) {
                if (v == a) return "";
              }
              return "'" + v + "': allowed values are " + Join(allowed);
            },
            "FORMAT"));
  }
  cmd->add_option("-o,--output", f->output,
                  "Write what stdout would show to FILE instead (atomically: FILE is replaced "
                  "when the command ends, and left alone on bad input)");
  Registry()[cmd] = f;
  return f;
}

std::shared_ptr<OutputFlags> OutputFlagsOf(const CLI::App* cmd) {
  const auto it = Registry().find(cmd);
  return it == Registry().end() ? nullptr : it->second;
}

Status StdoutToFile::Open(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  if (p.filename().empty()) return Status::InvalidInput("-o/--output '" + path + "': not a file");
  std::error_code ec;
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  fs::create_directories(dir, ec);
  std::string temp = (dir / ("." + p.filename().string() + ".XXXXXX")).string();
  const int fd = mkstemp(temp.data());
  if (fd < 0) {
    return Status::InvalidInput("-o/--output '" + path +
                                "': cannot create a file there: " + std::strerror(errno));
  }
  std::fflush(stdout);
  saved_fd_ = dup(STDOUT_FILENO);
  dup2(fd, STDOUT_FILENO);
  close(fd);
  path_ = path;
  temp_ = temp;
  return Status::Ok();
}

Status StdoutToFile::Close(bool keep) {
  if (saved_fd_ < 0) return Status::Ok();
  std::fflush(stdout);
  const bool synced = fsync(STDOUT_FILENO) == 0 || errno == EINVAL;
  dup2(saved_fd_, STDOUT_FILENO);
  close(saved_fd_);
  saved_fd_ = -1;
  if (!keep) {
    std::remove(temp_.c_str());
    return Status::Ok();
  }
  const mode_t mask = umask(0);  // mkstemp makes 0600; a file as `> FILE` would make it
  umask(mask);
  ::chmod(temp_.c_str(), 0666 & ~mask);
  if (!synced || std::rename(temp_.c_str(), path_.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(temp_.c_str());
    return Status::Internal("-o/--output '" + path_ + "': not written: " + why);
  }
  return Status::Ok();
}

StdoutToFile::~StdoutToFile() { Close(false); }

}  // namespace cb
