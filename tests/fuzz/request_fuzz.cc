// Fuzzes the validation layer with every kind of request: the first byte picks the RPC, the
// rest is parsed as its message and goes through the service's translation and the engine,
// behind a fake spawner. Whatever comes in, nothing crashes, and a refused submit leaves no
// trace (all or nothing).
#include <cstddef>
#include <cstdint>
#include <string>

#include "distd/v1/distd.pb.h"
#include "server/service/convert.h"
#include "tests/engine/engine_test_util.h"

namespace distd {
namespace {

template <typename Message>
bool Parse(const uint8_t* data, size_t size, Message* message) {
  return message->ParseFromArray(data, static_cast<int>(size));
}

void Submit(engine::Engine& engine, const v1::SubmitRequest& request) {
  const engine::PoolInfo before = engine.Pool();
  const size_t builds = engine.ListBuilds().size();
  auto ids = engine.Submit(
      request.build(),
      service::ToJobSpecs(request.cwd(), request.env(), request.commands(), request.settings()),
      engine::Caller{0, "fuzz"});
  const engine::PoolInfo after = engine.Pool();
  if (ids.ok()) {
    if (ids->size() != static_cast<size_t>(request.commands_size())) __builtin_trap();
  } else if (after.queued != before.queued || after.running != before.running ||
             engine.ListBuilds().size() != builds || ids.status().message().empty()) {
    __builtin_trap();  // refused, yet something was queued, or no reason given
  }
}

}  // namespace
}  // namespace distd

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace distd;
  if (size == 0) return 0;
  const uint8_t kind = data[0] % 6;
  ++data;
  --size;
  engine::EngineOptions options;
  options.jobs = 2;
  options.limits.max_queued_jobs = 64;
  engine::FakeEngine fake(options);
  engine::Engine& engine = *fake.engine;
  // A build with work in it, so that requests can meet a live build as well as a new one.
  (void)engine.Submit("default", {engine::Spec({"cc"}), engine::Spec({"cc"})},
                      engine::Caller{0, "fuzz"});
  switch (kind) {
    case 0: {
      v1::SubmitRequest request;
      if (Parse(data, size, &request)) Submit(engine, request);
      break;
    }
    case 1: {
      v1::RunRequest request;
      if (!Parse(data, size, &request)) break;
      v1::SubmitRequest submit;
      submit.set_build(request.build());
      submit.set_cwd(request.cwd());
      *submit.mutable_env() = request.env();
      *submit.add_commands() = request.command();
      Submit(engine, submit);
      break;
    }
    case 2: {
      v1::AbortRequest request;
      if (!Parse(data, size, &request)) break;
      engine::AbortOptions abort;
      abort.reason = request.reason();
      abort.mode = request.drain() ? engine::AbortMode::kDrain : engine::AbortMode::kKill;
      if (request.grace_ms() > 0) abort.grace = absl::Milliseconds(request.grace_ms());
      engine.AbortAsync(request.build(), abort, [](absl::StatusOr<engine::BuildInfo>) {});
      fake.spawner->DeliverSignals();
      break;
    }
    case 3: {
      v1::WaitRequest request;
      if (!Parse(data, size, &request)) break;
      engine::WaiterId id = engine.WaitAsync(request.build(), request.group(),
                                             [](absl::StatusOr<engine::BuildInfo>) {});
      if (id != 0) engine.CancelWaiter(id);
      break;
    }
    case 4: {
      v1::CloseBuildRequest request;
      if (Parse(data, size, &request)) (void)engine.Close(request.build());
      break;
    }
    case 5: {
      v1::LogsRequest request;
      if (!Parse(data, size, &request)) break;
      (void)engine.GetJobOutput(request.job_id());
      (void)engine.CancelJob(request.job_id());
      break;
    }
  }
  return 0;
}
