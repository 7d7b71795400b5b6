#include "workloads/model_spec.h"

#include <gtest/gtest.h>

#include <cmath>

namespace cb {
namespace {

const char* kValid = R"({
  "name": "m", "hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2,
  "ffn_size": 128, "vocab_size": 100
})";

std::string With(const std::string& field, const std::string& value) {
  std::string text = kValid;
  const std::string key = "\"" + field + "\": ";
  const size_t pos = text.find(key);
  if (pos == std::string::npos) return text.substr(0, text.size() - 1) + ", " + key + value + "}";
  const size_t end = text.find_first_of(",}", pos + key.size());
  return text.substr(0, pos + key.size()) + value + text.substr(end);
}

Status Parse(const std::string& text, ModelSpec* m = nullptr) {
  ModelSpec tmp;
  return ParseModelSpec(text, "models/m.json", m ? m : &tmp);
}

TEST(ModelSpec, ParsesValidSpecWithDefaults) {
  ModelSpec m;
  ASSERT_TRUE(Parse(kValid, &m).ok());
  EXPECT_EQ(m.hidden_size, 64);
  EXPECT_EQ(m.head_dim, 0);
  EXPECT_EQ(m.max_context, 8192);
  EXPECT_EQ(m.family, "llama");
}

struct BadCase {
  std::string field, value, expect;
};

class ModelSpecRejects : public ::testing::TestWithParam<BadCase> {};

TEST_P(ModelSpecRejects, NamesFileAndField) {
  const BadCase& c = GetParam();
  const Status s = Parse(With(c.field, c.value));
  ASSERT_EQ(s.code(), StatusCode::kInvalidInput) << c.field << "=" << c.value;
  EXPECT_NE(s.message().find("models/m.json"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(c.expect), std::string::npos) << s.message();
  EXPECT_EQ(s.ExitCode(), 2);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ModelSpecRejects,
    ::testing::Values(BadCase{"num_heads", "5", "field 'num_heads'"},        // 5 does not divide 64
                      BadCase{"num_kv_heads", "3", "field 'num_kv_heads'"},  // 3 does not divide 4
                      BadCase{"hidden_size", "0", "field 'hidden_size'"},
                      BadCase{"ffn_size", "-128", "field 'ffn_size'"},
                      BadCase{"vocab_size", "\"big\"", "field 'vocab_size'"},
                      BadCase{"num_layers", "2.5", "field 'num_layers'"},
                      BadCase{"head_dim", "15", "field 'head_dim'"},  // odd: no RoPE pairs
                      BadCase{"family", "\"gpt\"", "allowed values: llama, qwen3"},
                      BadCase{"num_layer", "2", "unknown field"}));

TEST(ModelSpec, ExplicitHeadDimAllowsHeadsThatDoNotDivideHidden) {
  // Qwen3-32B: 64 heads of 128 on a 5120-wide model.
  EXPECT_TRUE(Parse(With("num_heads", "6").replace(1, 0, "\"head_dim\": 16, ")).ok());
}

TEST(ModelSpec, MalformedJsonGivesLineAndColumn) {
  const Status s = Parse("{\n  \"name\": \"m\",\n  \"hidden_size\": 64,,\n}");
  ASSERT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find("models/m.json:3:"), std::string::npos) << s.message();
}

TEST(ModelSpec, MissingRequiredField) {
  const Status s = Parse(R"({"name": "m", "hidden_size": 64})");
  EXPECT_NE(s.message().find("field 'num_layers': is required"), std::string::npos) << s.message();
}

TEST(ModelSpec, UnknownPresetListsThePresets) {
  ModelSpec m;
  const Status s = LoadModelSpec("llama-9", &m);
  ASSERT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find("llama-3.2-1b"), std::string::npos) << s.message();
}

// Published parameter counts within 1% (Qwen2.5 has q/k/v biases that the stream leaves out).
TEST(ModelSpec, PresetsMatchPublishedParameterCounts) {
  for (const std::string& name : ListModelPresets()) {
    ModelSpec m;
    ASSERT_TRUE(LoadModelSpec(name, &m).ok()) << name;
    if (m.published_params <= 0) continue;
    EXPECT_NEAR(m.TotalParams() / m.published_params, 1.0, 0.01) << name;
  }
  EXPECT_GE(ListModelPresets().size(), 6u);
}

}  // namespace
}  // namespace cb
