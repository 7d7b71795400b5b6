#include "backends/cuda_plugin_loader.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <vector>

namespace cb {
namespace {

constexpr char kPluginFile[] = "libclusterbench_cuda.so";

std::string ExecutableDir() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  const std::string path(buf, static_cast<size_t>(n));
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

struct Loaded {
  const CudaPluginTable* table = nullptr;
  std::string error;
};

Loaded Load() {
  // Why a plugin: linking cuBLAS, cuBLASLt, NCCL and cudart into the binary puts their static
  // TLS blocks (libcublasLt alone 0x17020 bytes) into every thread's stack, and civetweb
  // (`clusterbench serve`, Prometheus pull) creates its threads with a fixed 100 KiB stack, so
  // pthread_create fails with EINVAL. TLS of a library dlopen'ed later is allocated dynamically
  // (these libraries use the global-dynamic model), so loading them only for `--backend cuda`
  // leaves other threads alone, and a CUDA build starts where no CUDA runtime is installed.
  std::vector<std::string> candidates;
  if (const std::string dir = ExecutableDir(); !dir.empty()) {
    candidates.push_back(dir + "/" + kPluginFile);
  }
  if (const char* env = std::getenv("CLUSTERBENCH_CUDA_PLUGIN"); env != nullptr && *env) {
    candidates.push_back(env);
  }
#if defined(CLUSTERBENCH_CUDA_PLUGIN_BUILD_PATH)
  if (std::find(candidates.begin(), candidates.end(), CLUSTERBENCH_CUDA_PLUGIN_BUILD_PATH) ==
      candidates.end()) {
    candidates.push_back(CLUSTERBENCH_CUDA_PLUGIN_BUILD_PATH);
  }
#endif
  Loaded out;
  std::string tried;
  for (const std::string& path : candidates) {
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);  // never dlclose'd
    if (handle == nullptr) {
      const char* e = dlerror();
      tried += (tried.empty() ? "" : "; ") + std::string(e != nullptr ? e : path.c_str());
      continue;
    }
    using Entry = const CudaPluginTable* (*)();
    auto entry = reinterpret_cast<Entry>(dlsym(handle, "clusterbench_cuda_plugin"));
    if (entry == nullptr) {
      const char* e = dlerror();
      out.error = "plugin " + path + " is not a clusterbench CUDA plugin: " +
                  std::string(e != nullptr ? e : "no clusterbench_cuda_plugin symbol");
      return out;
    }
    const CudaPluginTable* t = entry();
    if (t == nullptr || t->version != kCudaPluginVersion || t->size != sizeof(CudaPluginTable)) {
      out.error = "plugin " + path + " has table version " +
                  std::to_string(t != nullptr ? t->version : 0) + ", this binary needs " +
                  std::to_string(kCudaPluginVersion) + " (rebuild both from the same tree)";
      return out;
    }
    out.table = t;
    return out;
  }
  out.error = "plugin not found: " + (tried.empty() ? std::string(kPluginFile) : tried) +
              " (set CLUSTERBENCH_CUDA_PLUGIN to its path)";
  return out;
}

}  // namespace

const CudaPluginTable* LoadCudaPlugin(std::string* error) {
  static const Loaded loaded = Load();
  if (loaded.table == nullptr && error != nullptr) *error = loaded.error;
  return loaded.table;
}

}  // namespace cb
