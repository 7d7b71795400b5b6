#include "harness/serve_model/serving_engine.h"

#include <algorithm>
#include <chrono>

namespace cb {

bool TokenStream::Next(std::vector<int32_t>* tokens, double timeout_s) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::duration<double>(timeout_s),
               [&] { return !tokens_.empty() || done_; });
  tokens->insert(tokens->end(), tokens_.begin(), tokens_.end());
  tokens_.clear();
  return !done_;
}

std::string TokenStream::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void TokenStream::Push(const int32_t* tokens, size_t n) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.insert(tokens_.end(), tokens, tokens + n);
  }
  cv_.notify_all();
}

void TokenStream::Finish(const std::string& error) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    error_ = error;
  }
  cv_.notify_all();
}

ServingEngine::ServingEngine(Session& session, Clock& clock, const OpStream& stream,
                             const EngineConfig& cfg)
    : session_(session),
      clock_(clock),
      stream_(stream),
      cfg_(cfg),
      kv_(cfg.kv_pages, cfg.kv_page_tokens) {
  batcher_ = std::make_unique<ContinuousBatcher>(&reqs_, cfg_.slots, cfg_.max_prefill_tokens, &kv_);
}

ServingEngine::~ServingEngine() { Stop(); }

void ServingEngine::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void ServingEngine::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status ServingEngine::Submit(std::vector<int32_t> prompt, int64_t max_tokens,
                             std::shared_ptr<TokenStream>* out) {
  const int64_t n = static_cast<int64_t>(prompt.size());
  if (n == 0) return Status::InvalidInput("the prompt is empty");
  if (max_tokens < 1) return Status::InvalidInput("max_tokens must be at least 1");
  if (n + max_tokens > cfg_.max_context) {
    return Status::InvalidInput("this model's maximum context length is " +
                                std::to_string(cfg_.max_context) + " tokens; the request has " +
                                std::to_string(n) + " prompt tokens and asks for " +
                                std::to_string(max_tokens) + " more");
  }
  if (kv_.PagesFor(n + max_tokens) > kv_.total()) {
    return Status::InvalidInput("the request needs more KV-cache pages than the server has");
  }
  for (int32_t t : prompt) {
    if (t < 0 || t >= cfg_.vocab) {
      return Status::InvalidInput("token id " + std::to_string(t) + " is outside the vocabulary (" +
                                  std::to_string(cfg_.vocab) + ")");
    }
  }
  auto stream = std::make_shared<TokenStream>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failed_.empty()) return Status::Internal("the engine failed: " + failed_);
    if (stop_) return Status::Internal("the server is stopping");
    inbox_.push_back({std::move(prompt), max_tokens, stream});
  }
  cv_.notify_all();
  *out = std::move(stream);
  return Status::Ok();
}

void ServingEngine::TakeArrivals(std::vector<Pending>* arrivals) {
  for (Pending& p : *arrivals) {
    const int64_t index = static_cast<int64_t>(reqs_.size());
    ServingRequest r;
    r.prompt_len = static_cast<int64_t>(p.prompt.size());
    r.output_len = p.max_tokens;
    r.prompt = std::move(p.prompt);
    reqs_.push_back(std::move(r));
    outcomes_.emplace_back();
    streams_.push_back(std::move(p.stream));
    emitted_.push_back(0);
    open_.push_back(index);
    batcher_->Arrive(index);
  }
  arrivals->clear();
}

void ServingEngine::Loop() {
  const double t0 = clock_.NowSeconds();
  std::vector<Pending> arrivals;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Sleep only when nothing is running or waiting.
      if (inbox_.empty() && !stop_ && batcher_->running() == 0 && batcher_->waiting() == 0) {
        cv_.wait(lock, [&] { return !inbox_.empty() || stop_; });
      }
      if (stop_) break;
      arrivals.swap(inbox_);
    }
    TakeArrivals(&arrivals);
    // A request whose client went away ends at its next step (it asks for no more tokens).
    for (int64_t i : open_) {
      ServingRequest& r = reqs_[static_cast<size_t>(i)];
      if (streams_[static_cast<size_t>(i)]->cancelled()) {
        r.output_len = std::max<int64_t>(1, static_cast<int64_t>(outcomes_[i].tokens.size()));
      }
    }
    bool worked = false;
    if (Status s = Step(t0, &worked); !s.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      failed_ = s.message();
      break;
    }
    if (!worked) {  // requests wait for room that frees no other way: do not spin
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(10), [&] { return !inbox_.empty() || stop_; });
    }
  }
  FailAll(failed_.empty() ? "the server is stopping" : "the engine failed: " + failed_);
}

Status ServingEngine::Step(double t0, bool* worked) {
  *worked = false;
  batcher_->Admit(clock_.NowSeconds() - t0, &outcomes_);
  StepIO io;
  if (!batcher_->BuildStep(&io)) return Status::Ok();
  *worked = true;
  const auto wall0 = std::chrono::steady_clock::now();
  const double m0 = clock_.NowSeconds();
  CB_RETURN_IF_ERROR(session_.Run(stream_, {0, stream_.ops.size()}, io));
  CB_RETURN_IF_ERROR(session_.Synchronize());
  if (clock_.simulated()) {  // a modelled step lasts its modelled time for the client too
    std::this_thread::sleep_until(wall0 + std::chrono::duration<double>(clock_.NowSeconds() - m0));
  }
  ++steps_;
  if (io.next_tokens.size() != io.seqs.size() ||
      std::any_of(io.next_tokens.begin(), io.next_tokens.end(),
                  [&](int32_t tok) { return tok < 0 || tok >= cfg_.vocab; })) {
    return Status::Internal("the backend produced an out-of-range token (NaN logits?)");
  }
  std::vector<int64_t> finished;
  batcher_->Complete(io, clock_.NowSeconds() - t0, &outcomes_, &finished);
  Deliver(finished);
  return Status::Ok();
}

void ServingEngine::Deliver(const std::vector<int64_t>& finished) {
  for (int64_t i : open_) {
    const size_t k = static_cast<size_t>(i);
    const auto& tokens = outcomes_[k].tokens;
    if (tokens.size() > emitted_[k]) {
      streams_[k]->Push(tokens.data() + emitted_[k], tokens.size() - emitted_[k]);
      emitted_[k] = tokens.size();
    }
  }
  for (int64_t i : finished) {
    const size_t k = static_cast<size_t>(i);
    streams_[k]->Finish("");
    streams_[k].reset();
    // Keep the slot in the vectors (the batcher indexes them) but free what it held.
    std::vector<int32_t>().swap(reqs_[k].prompt);
    std::vector<int32_t>().swap(outcomes_[k].tokens);
    std::erase(open_, i);
    ++served_;
  }
}

void ServingEngine::FailAll(const std::string& why) {
  for (int64_t i : open_) {
    if (streams_[static_cast<size_t>(i)]) streams_[static_cast<size_t>(i)]->Finish(why);
  }
  open_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  for (Pending& p : inbox_) p.stream->Finish(why);
  inbox_.clear();
}

}  // namespace cb
