// Measurement validity on noisy hosts (harness/ceiling_check.h): MFU/MBU are judged against
// ceilings sampled beside the measured window; a ratio above 1 or probes that disagree by more
// than the margin make the run unstable. The judging rule, the choice of ceilings, and (the
// regression) whole offline runs whose scripted probe disagrees with the window, on the reference
// backend: a real device judged against host ceilings like cpu, single-threaded, so the tests stay
// quick on a loaded host (the CLI tests use cpu).
#include "harness/ceiling_check.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/registry.h"
#include "harness/fault_injection.h"
#include "harness/scenarios/serving_runner.h"
#include "harness/scenarios/validity.h"

namespace cb {
namespace {

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

bool AnyContains(const std::vector<std::string>& v, const std::string& s) {
  return std::any_of(v.begin(), v.end(),
                     [&](const std::string& x) { return x.find(s) != std::string::npos; });
}

Metric Ratio(const std::string& name, double v) { return Metric{name, "ratio", {}, v, false, {}}; }

/// A check of probed ceilings: memory 40 GB/s, matmul 400 GFLOP/s, before and after as given.
CeilingCheckRecord Probed(double mem_before, double mem_after, double flops_before = 400e9,
                          double flops_after = 400e9) {
  CeilingCheckRecord c;
  c.dtype = "bf16";
  c.max_drift = kDefaultMaxCeilingDrift;
  auto figure = [](double b, double a) {
    CeilingFigure f;
    f.before = b;
    f.after = a;
    f.used = std::max(a, b);
    f.drift = std::fabs(a - b) / f.used;
    f.source = "probes";
    return f;
  };
  c.memory = figure(mem_before, mem_after);
  c.matmul = figure(flops_before, flops_after);
  return c;
}

// --- The judging rule ---------------------------------------------------------------------

TEST(JudgeCeilings, RatiosAtMostOneAndAgreeingProbesAreOk) {
  CeilingCheckRecord c = Probed(40e9, 38e9);  // 5% apart
  JudgeCeilings({Ratio("mfu_prefill_ratio", 0.9), Ratio("mbu_decode_ratio", 1.0),
                 Metric{"decode_tokens_per_second", "tokens/s", {}, 5e3, false, {}}},
                &c);
  EXPECT_EQ(c.verdict, "ok");
  EXPECT_TRUE(c.findings.empty());
  EXPECT_TRUE(c.reasons.empty());
}

TEST(JudgeCeilings, ARatioAboveOneExceedsTheCeiling) {
  CeilingCheckRecord c = Probed(40e9, 40e9);
  JudgeCeilings({Ratio("mfu_prefill_ratio", 0.5), Ratio("mbu_decode_ratio", 1.25)}, &c);
  EXPECT_EQ(c.verdict, "unstable");
  EXPECT_EQ(c.findings, std::vector<std::string>{"ceiling_exceeded"});
  ASSERT_EQ(c.reasons.size(), 1u);
  // Names the metric, the achieved rate (1.25 x 40 GB/s) and the ceiling.
  EXPECT_NE(c.reasons[0].find("mbu_decode_ratio is 1.25"), std::string::npos) << c.reasons[0];
  EXPECT_NE(c.reasons[0].find("50.0 GB/s"), std::string::npos) << c.reasons[0];
  EXPECT_NE(c.reasons[0].find("40.0 GB/s"), std::string::npos) << c.reasons[0];
}

TEST(JudgeCeilings, ANonFiniteRatioIsADefectToo) {
  CeilingCheckRecord c = Probed(40e9, 40e9);
  JudgeCeilings({Ratio("mfu_decode_ratio", std::numeric_limits<double>::quiet_NaN())}, &c);
  EXPECT_EQ(c.verdict, "unstable");
  EXPECT_TRUE(Has(c.findings, "ceiling_exceeded"));
}

TEST(JudgeCeilings, ProbesFurtherApartThanTheMarginAreADrift) {
  CeilingCheckRecord c = Probed(60e9, 30e9);  // the VM's swing: 50% apart
  JudgeCeilings({Ratio("mbu_decode_ratio", 0.7)}, &c);
  EXPECT_EQ(c.verdict, "unstable");
  EXPECT_EQ(c.findings, std::vector<std::string>{"ceiling_drift"});
  ASSERT_EQ(c.reasons.size(), 1u);
  EXPECT_NE(c.reasons[0].find("60.0 GB/s before the window and 30.0 GB/s after"), std::string::npos)
      << c.reasons[0];
  EXPECT_NE(c.reasons[0].find("50% apart"), std::string::npos) << c.reasons[0];
}

TEST(JudgeCeilings, TheMarginIsInclusiveAndConfigurable) {
  CeilingCheckRecord c = Probed(100e9, 85e9);  // exactly 15% apart
  JudgeCeilings({}, &c);
  EXPECT_EQ(c.verdict, "ok");
  c.max_drift = 0.10;
  JudgeCeilings({}, &c);
  EXPECT_EQ(c.verdict, "unstable");
}

TEST(JudgeCeilings, AMatmulDriftCountsAsMuchAsAMemoryOne) {
  CeilingCheckRecord c = Probed(40e9, 40e9, 450e9, 220e9);
  JudgeCeilings({Ratio("mfu_prefill_ratio", 0.8)}, &c);
  EXPECT_EQ(c.findings, std::vector<std::string>{"ceiling_drift"});
  ASSERT_EQ(c.reasons.size(), 1u);
  EXPECT_NE(c.reasons[0].find("matmul peak"), std::string::npos) << c.reasons[0];
}

TEST(JudgeCeilings, CachedCeilingsHaveNoDriftButRatiosAreStillJudged) {
  CeilingCheckRecord c = Probed(60e9, 30e9);
  c.memory.source = c.matmul.source = "cached";
  JudgeCeilings({Ratio("mbu_decode_ratio", 0.9)}, &c);
  EXPECT_EQ(c.verdict, "ok");
  JudgeCeilings({Ratio("mbu_decode_ratio", 1.1)}, &c);
  EXPECT_EQ(c.findings, std::vector<std::string>{"ceiling_exceeded"});
}

TEST(JudgeCeilings, BothFindingsEachOnceAndJudgingAgainStartsAfresh) {
  CeilingCheckRecord c = Probed(60e9, 30e9);
  JudgeCeilings({Ratio("mfu_prefill_ratio", 1.2), Ratio("mbu_decode_ratio", 1.3)}, &c);
  EXPECT_EQ(c.findings, (std::vector<std::string>{"ceiling_exceeded", "ceiling_drift"}));
  EXPECT_EQ(c.reasons.size(), 3u);  // two ratios, one drift
  c.memory = Probed(40e9, 40e9).memory;
  JudgeCeilings({Ratio("mbu_decode_ratio", 0.5)}, &c);
  EXPECT_EQ(c.verdict, "ok");
  EXPECT_TRUE(c.reasons.empty());
}

// --- Which ceilings a run is judged against -----------------------------------------------

CeilingPlanInput PlanInput() {
  CeilingPlanInput in;
  in.cached.mem_read_bytes_per_s = 34e9;
  in.cached.matmul_flops_per_s[static_cast<int>(DType::kBF16)] = 445e9;
  in.dtype = DType::kBF16;
  in.cache_bytes = 32.0 * (1 << 20);
  in.prefill_step_bytes = in.decode_step_bytes = 2.5e9;  // llama-3.2-1b: far above the cache
  return in;
}

WindowProbes Pair(double mem_before, double mem_after, double flops = 440e9) {
  WindowProbes p;
  p.taken = true;
  p.before = {mem_before, flops, 0.05, 0.08};
  p.after = {mem_after, flops, 0.05, 0.08};
  return p;
}

TEST(PlanCeilings, DividesByTheHigherProbeAndKeepsTheCachedFigureAsReference) {
  CeilingPlanInput in = PlanInput();
  in.ranks = {{0, Pair(36e9, 61e9)}};
  const CeilingPlan plan = PlanCeilings(in);
  ASSERT_TRUE(plan.check.has_value());
  EXPECT_EQ(plan.basis.mem_read_bytes_per_s, 61e9);
  EXPECT_EQ(plan.basis.matmul_flops_per_s, 440e9);
  EXPECT_EQ(plan.check->memory.source, "probes");
  EXPECT_EQ(plan.check->memory.before, 36e9);
  EXPECT_EQ(plan.check->memory.after, 61e9);
  EXPECT_NEAR(plan.check->memory.drift, 25.0 / 61, 1e-12);
  EXPECT_EQ(plan.check->memory.cached, 34e9);
  EXPECT_EQ(plan.check->matmul.cached, 445e9);
  ASSERT_EQ(plan.check->probes.size(), 2u);
  EXPECT_EQ(plan.check->probes[0].when, "before");
  EXPECT_EQ(plan.check->probes[1].mem_read_bytes_per_s, 61e9);
  EXPECT_TRUE(plan.basis.mbu_prefill && plan.basis.mbu_decode);
}

TEST(PlanCeilings, WithoutProbesTheCachedCeilingsAreUsed) {
  CeilingPlanInput in = PlanInput();
  in.ranks = {{0, WindowProbes{}}};
  const CeilingPlan plan = PlanCeilings(in);
  EXPECT_EQ(plan.basis.mem_read_bytes_per_s, 34e9);
  EXPECT_EQ(plan.check->memory.source, "cached");
  EXPECT_EQ(plan.check->memory.drift, 0);
  EXPECT_TRUE(plan.check->probes.empty());
}

TEST(PlanCeilings, AFailedProbeFallsBackOnTheCacheAndSaysWhy) {
  CeilingPlanInput in = PlanInput();
  WindowProbes failed;
  failed.error = "cannot allocate 256 MiB";
  in.ranks = {{0, Pair(30e9, 31e9)}, {1, failed}};
  in.devices = 2;
  const CeilingPlan plan = PlanCeilings(in);
  EXPECT_EQ(plan.check->memory.source, "cached");
  EXPECT_EQ(plan.basis.mem_read_bytes_per_s, 68e9);  // cached x 2 devices
  EXPECT_TRUE(AnyContains(plan.check->notes, "rank 1: cannot allocate"));
}

TEST(PlanCeilings, RanksAreSummed) {
  CeilingPlanInput in = PlanInput();
  in.devices = 2;
  in.ranks = {{0, Pair(20e9, 18e9)}, {1, Pair(19e9, 21e9)}};
  const CeilingPlan plan = PlanCeilings(in);
  EXPECT_EQ(plan.check->memory.before, 39e9);
  EXPECT_EQ(plan.check->memory.after, 39e9);
  EXPECT_EQ(plan.basis.mem_read_bytes_per_s, 39e9);
  EXPECT_EQ(plan.basis.matmul_flops_per_s, 880e9);
  EXPECT_EQ(plan.check->probes.size(), 4u);
}

TEST(PlanCeilings, APhaseThatFitsInTheCacheGetsNoMbu) {
  CeilingPlanInput in = PlanInput();
  in.prefill_step_bytes = 8.0 * (1 << 20);  // tiny: its steps stay in the 32 MiB L3
  in.decode_step_bytes = 1.4 * (1 << 20);
  in.ranks = {{0, Pair(36e9, 36e9)}};
  const CeilingPlan plan = PlanCeilings(in);
  EXPECT_FALSE(plan.basis.mbu_prefill);
  EXPECT_FALSE(plan.basis.mbu_decode);
  EXPECT_TRUE(AnyContains(plan.check->notes, "mbu_decode_ratio not reported"));
  in.cache_bytes = 0;  // unknown cache: every phase is judged against memory bandwidth
  EXPECT_TRUE(PlanCeilings(in).basis.mbu_decode);
}

TEST(PlanCeilings, SimulatedDevicesAreModelledNotProbedOrJudged) {
  CeilingPlanInput in = PlanInput();
  in.simulated = true;
  in.ranks = {{0, WindowProbes{}}};
  const CeilingPlan plan = PlanCeilings(in);
  EXPECT_FALSE(plan.check.has_value());
  EXPECT_EQ(plan.basis.mem_read_bytes_per_s, 34e9);
}

TEST(Validity, CeilingFindingsMakeARunUnstableAndStrictMakesItInvalid) {
  ValidityInput in;
  in.unstable_reasons = {"ceiling_drift: memory read bandwidth was 60 GB/s before ..."};
  RunRecord r;
  ApplyValidity(ValidityRules{}, in, &r);
  ASSERT_TRUE(r.validity.has_value());
  EXPECT_EQ(r.validity->label, "unstable");
  EXPECT_TRUE(r.validity->unstable);
  EXPECT_TRUE(AnyContains(r.validity->reasons, "unstable: ceiling_drift"));
  EXPECT_EQ(r.status, "ok");
  EXPECT_FALSE(r.Publishable());
  RunRecord strict;
  ApplyValidity(ValidityRules{0, 0, 0, true}, in, &strict);
  EXPECT_EQ(strict.status, "invalid");
  EXPECT_NE(strict.status_message.find("ceiling_drift"), std::string::npos);
}

// --- Regression: whole offline runs whose probe disagrees with the window -----------------

/// Returns the given samples in turn (the last one again when they run out).
class ScriptedProbe final : public CeilingProbe {
 public:
  explicit ScriptedProbe(std::vector<CeilingSample> samples) : samples_(std::move(samples)) {}
  Status Sample(DType, CeilingSample* out) override {
    *out = samples_[std::min(calls_++, samples_.size() - 1)];
    return Status::Ok();
  }
  std::string Method(DType) const override { return "scripted test probe"; }
  double CacheBytes() const override { return 0; }  // every phase judged against bandwidth
  size_t calls() const { return calls_; }

 private:
  std::vector<CeilingSample> samples_;
  size_t calls_ = 0;
};

WorkloadSpec TinyOffline(const std::string& backend = "reference") {
  WorkloadSpec w;
  EXPECT_TRUE(LoadModelSpec("tiny", &w.model).ok());
  w.model_ref = "tiny";
  w.backend = backend;
  w.dtype = DType::kF32;
  w.prompt_len = 8;
  w.gen_len = 4;
  w.repetitions = 2;
  w.verify = false;
  return w;
}

/// Runs `w` on `backend` with `probe` and cached ceilings of 34 GB/s and 200 GFLOP/s.
RunRecord RunWith(const WorkloadSpec& w, CeilingProbe* probe) {
  std::unique_ptr<Device> dev;
  EXPECT_TRUE(OpenDevice(w.backend, &dev).ok());
  RunnerOptions opts;
  opts.quiet = true;
  opts.ceiling_probe = probe;
  opts.ceilings.mem_read_bytes_per_s = 34e9;
  opts.ceilings.matmul_flops_per_s[static_cast<int>(DType::kF32)] = 200e9;
  opts.ceilings.source = "test cache";
  RunRecord rec;
  EXPECT_TRUE(RunScenario(w, *dev, opts, &rec).ok());
  EXPECT_TRUE(rec.status == "ok" || rec.status == "invalid") << rec.status_message;
  return rec;
}

constexpr double kHuge = 1e18;  ///< a ceiling no window comes near

TEST(CeilingProbeRegression, AProbeAfterTheWindowThatDisagreesMakesTheRunUnstable) {
  ScriptedProbe probe({{kHuge, kHuge, 0.05, 0.08}, {0.5 * kHuge, kHuge, 0.05, 0.08}});
  const RunRecord rec = RunWith(TinyOffline(), &probe);
  EXPECT_EQ(probe.calls(), 2u);  // once before the first measured repetition, once after
  ASSERT_EQ(rec.status, "ok");
  ASSERT_TRUE(rec.ceiling_check.has_value());
  const CeilingCheckRecord& c = *rec.ceiling_check;
  EXPECT_EQ(c.verdict, "unstable");
  EXPECT_EQ(c.findings, std::vector<std::string>{"ceiling_drift"});
  EXPECT_EQ(c.memory.before, kHuge);
  EXPECT_EQ(c.memory.after, 0.5 * kHuge);
  EXPECT_EQ(c.memory.used, kHuge);
  EXPECT_EQ(c.memory.cached, 34e9);
  EXPECT_EQ(c.probes.size(), 2u);
  ASSERT_TRUE(rec.validity.has_value());
  EXPECT_EQ(rec.validity->label, "unstable");
  EXPECT_TRUE(AnyContains(rec.validity->reasons, "unstable: ceiling_drift"));
  EXPECT_FALSE(rec.Publishable());  // kept, with its figures, but never published as valid
  EXPECT_NE(rec.FindMetric("decode_tokens_per_second"), nullptr);
}

TEST(CeilingProbeRegression, AProbeBelowWhatTheWindowAchievedMakesTheRunUnstable) {
  // Probes that agree with each other but read far less than the window moved: MBU > 1.
  ScriptedProbe probe({{1e6, kHuge, 0.05, 0.08}});
  const RunRecord rec = RunWith(TinyOffline(), &probe);
  ASSERT_TRUE(rec.ceiling_check.has_value());
  EXPECT_EQ(rec.ceiling_check->findings, std::vector<std::string>{"ceiling_exceeded"});
  const Metric* mbu = rec.FindMetric("mbu_decode_ratio");
  ASSERT_NE(mbu, nullptr);
  EXPECT_GT(mbu->value, 1);  // against the probe's 1 MB/s, not the cached 34 GB/s
  EXPECT_TRUE(AnyContains(rec.ceiling_check->reasons, "mbu_decode_ratio is"));
  ASSERT_TRUE(rec.validity.has_value());
  EXPECT_EQ(rec.validity->label, "unstable");
  EXPECT_FALSE(rec.Publishable());
}

TEST(CeilingProbeRegression, StrictMakesADisagreeingRunInvalid) {
  ScriptedProbe probe({{kHuge, kHuge, 0, 0}, {0.5 * kHuge, kHuge, 0, 0}});
  WorkloadSpec w = TinyOffline();
  w.serving.strict = true;
  const RunRecord rec = RunWith(w, &probe);
  EXPECT_EQ(rec.status, "invalid");
  ASSERT_TRUE(rec.validity.has_value());
  EXPECT_EQ(rec.validity->label, "invalid");
  EXPECT_NE(rec.status_message.find("ceiling_drift"), std::string::npos) << rec.status_message;
}

TEST(CeilingProbeRegression, AgreeingProbesAboveTheWindowLeaveTheRunValid) {
  ScriptedProbe probe({{kHuge, kHuge, 0, 0}, {0.95 * kHuge, kHuge, 0, 0}});
  const RunRecord rec = RunWith(TinyOffline(), &probe);
  ASSERT_TRUE(rec.ceiling_check.has_value());
  EXPECT_EQ(rec.ceiling_check->verdict, "ok");
  EXPECT_FALSE(rec.validity.has_value());  // offline rules are off: no section needed
  EXPECT_TRUE(rec.Publishable());
  EXPECT_LT(rec.FindMetric("mfu_prefill_ratio")->value, 1e-3);  // against the probe
}

TEST(CeilingProbeRegression, ProbesTurnedOffUseTheCacheAndStillJudgeRatios) {
  ScriptedProbe probe({{1e6, 1e6, 0, 0}});
  WorkloadSpec w = TinyOffline();
  w.serving.ceiling_probes = false;
  const RunRecord rec = RunWith(w, &probe);
  EXPECT_EQ(probe.calls(), 0u);
  ASSERT_TRUE(rec.ceiling_check.has_value());
  EXPECT_EQ(rec.ceiling_check->memory.source, "cached");
  EXPECT_EQ(rec.ceiling_check->memory.used, 34e9);
  EXPECT_NE(rec.ceiling_check->method.find("--no-ceiling-probes"), std::string::npos);
  EXPECT_TRUE(rec.ceiling_check->probes.empty());
}

/// A probe that cannot sample (e.g. no memory for its buffer).
class FailingProbe final : public CeilingProbe {
 public:
  Status Sample(DType, CeilingSample*) override {
    ++calls;
    return Status::Exhausted("ceiling probe: cannot allocate 256 MiB");
  }
  std::string Method(DType) const override { return "failing test probe"; }
  double CacheBytes() const override { return 0; }
  int calls = 0;
};

TEST(CeilingProbeRegression, AFailedProbeFallsBackOnTheCachedCeilingsAndSaysSo) {
  FailingProbe probe;
  const RunRecord rec = RunWith(TinyOffline(), &probe);
  EXPECT_EQ(probe.calls, 1);  // no second probe without the first
  ASSERT_EQ(rec.status, "ok");
  ASSERT_TRUE(rec.ceiling_check.has_value());
  EXPECT_EQ(rec.ceiling_check->memory.source, "cached");
  EXPECT_EQ(rec.ceiling_check->memory.used, 34e9);
  EXPECT_TRUE(AnyContains(rec.ceiling_check->notes, "probe failed on rank 0: ceiling probe"));
}

TEST(CeilingProbeRegression, SimulatedRunsAreNeitherProbedNorJudged) {
  ScriptedProbe probe({{1e6, 1e6, 0, 0}});
  const RunRecord rec = RunWith(TinyOffline("sim"), &probe);
  EXPECT_FALSE(rec.ceiling_check.has_value());
  EXPECT_EQ(probe.calls(), 0u);
}

TEST(CeilingProbeFaults, InjectedProbesAreDeterministic) {
  EXPECT_EQ(MakeFaultyCeilingProbe("nan-logits"), nullptr);
  auto drift = MakeFaultyCeilingProbe("ceiling-drift");
  ASSERT_NE(drift, nullptr);
  CeilingSample before, after;
  ASSERT_TRUE(drift->Sample(DType::kBF16, &before).ok());
  ASSERT_TRUE(drift->Sample(DType::kBF16, &after).ok());
  EXPECT_EQ(after.mem_read_bytes_per_s, 0.5 * before.mem_read_bytes_per_s);
  EXPECT_EQ(drift->CacheBytes(), 0);
  auto low = MakeFaultyCeilingProbe("ceiling-low");
  ASSERT_NE(low, nullptr);
  ASSERT_TRUE(low->Sample(DType::kBF16, &before).ok());
  EXPECT_EQ(before.mem_read_bytes_per_s, 1e6);
  std::unique_ptr<Device> dev, wrapped;
  ASSERT_TRUE(OpenDevice("reference", &dev).ok());
  EXPECT_TRUE(WrapWithFault("ceiling-low", 0, std::move(dev), &wrapped).ok());
  EXPECT_NE(wrapped, nullptr);
}

}  // namespace
}  // namespace cb
