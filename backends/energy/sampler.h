#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace cb::energy {

/// Calls `tick` every `interval_s` on its own thread until Stop (or destruction). Stop wakes
/// the thread at once; `tick` never runs after Stop returns.
class Sampler {
 public:
  Sampler() = default;
  ~Sampler() { Stop(); }
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  void Start(double interval_s, std::function<void()> tick) {
    Stop();
    stop_ = false;
    thread_ = std::thread([this, interval_s, tick = std::move(tick)] {
      std::unique_lock<std::mutex> lock(mu_);
      const auto period = std::chrono::duration<double>(interval_s);
      while (!cv_.wait_for(lock, period, [this] { return stop_; })) {
        lock.unlock();
        tick();
        lock.lock();
      }
    });
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = true;
  std::thread thread_;
};

/// Seconds on the steady clock.
double NowS();

}  // namespace cb::energy
