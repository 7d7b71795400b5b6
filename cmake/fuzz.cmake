# CLUSTERBENCH_FUZZ: only the libFuzzer target over the parsing and planning code (clang with
# -fsanitize=fuzzer,address,undefined); nothing else, so the fuzz build stays small (ci/fuzz).
find_package(nlohmann_json 3.10 REQUIRED)
set(CLUSTERBENCH_SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
add_library(cb_warnings INTERFACE)
add_subdirectory(harness/core)
set(sanitize -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
  -fno-omit-frame-pointer)
add_executable(plan_fuzzer
  tests/fuzz/plan_fuzzer.cc
  harness/plan.cc
  harness/scenarios/serving_fields.cc
  harness/scenarios/distributions.cc
  harness/endpoint/endpoint_fields.cc
  backends/endpoint/endpoint_url.cc
  backends/endpoint/openai_protocol.cc
  workloads/json_fields.cc
  workloads/model_spec.cc
  workloads/op_stream.cc
  workloads/op_cost.cc
  workloads/deployment.cc
  workloads/moe_routing.cc
  workloads/layer_plan.cc
  workloads/weights.cc)
target_compile_options(plan_fuzzer PRIVATE ${sanitize})
target_link_options(plan_fuzzer PRIVATE ${sanitize})
target_link_libraries(plan_fuzzer PRIVATE cb_core nlohmann_json::nlohmann_json)
