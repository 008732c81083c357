// Micro-benchmarks of the engine's hot paths, against the fake spawner so that only the
// engine's own cost is measured: submit, dispatch, cancel, abort and fail-fast with a large
// queue, the sweep that finishes a cancelled queue's records afterwards, output.
// Results and how to read them: bench/README.md.
#include <signal.h>

#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "spdlog/spdlog.h"
#include "tests/engine/engine_test_util.h"

namespace distd::engine {
namespace {

EngineOptions Options(int jobs) {
  EngineOptions options;
  options.jobs = jobs;
  return options;
}

std::vector<JobSpec> Batch(int n) {
  // About 30 bytes of argv, as a compile command of a small project.
  return std::vector<JobSpec>(n, Spec({"cc", "-c", "src/module_0042.c", "-O2"}));
}

// Evicts the CPU caches (32 MiB of L3 here), so that every size of a benchmark starts equally
// cold. Otherwise the set-up of a small case leaves the engine's data in cache and that of a
// large one (tens of MB of jobs) does not, and the figures would compare caches, not work.
void ColdCaches() {
  static auto* buffer = new std::vector<char>(64 << 20);
  for (size_t i = 0; i < buffer->size(); i += 64) ++(*buffer)[i];
  benchmark::ClobberMemory();
}

// Submit a batch, then run every job to completion on a pool of 2: the whole per-job cost of
// queueing, dispatching, spawning (fake), reaping and recording.
void BM_SubmitAndDispatch(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  FakeEngine fake(Options(2));
  for (auto _ : state) {
    auto ids = fake.engine->Submit("b", Batch(batch), Caller{});
    if (!ids.ok()) state.SkipWithError("submit failed");
    for (;;) {
      std::vector<JobId> running = fake.spawner->Running();
      if (running.empty()) break;
      for (JobId id : running) fake.spawner->Exit(id, 0);
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_SubmitAndDispatch)->Arg(1)->Arg(100)->Arg(2000);

// Submit alone: the pool is held busy, so every job stays queued.
void BM_SubmitQueued(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    auto fake = std::make_unique<FakeEngine>(Options(1));
    (void)fake->engine->Submit("hold", Batch(1), Caller{});
    state.ResumeTiming();
    auto ids = fake->engine->Submit("b", Batch(batch), Caller{});
    benchmark::DoNotOptimize(ids);
    state.PauseTiming();
    fake.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_SubmitQueued)->Arg(1000)->Arg(100'000)->Unit(benchmark::kMillisecond);

// The queue lengths of the abort and fail-fast rows, at a fixed count: the untimed set-up
// (queueing N jobs, tearing the engine down) dwarfs the timed part, and the library would
// otherwise run it until the timed part adds up to its minimum time. Each iteration starts
// with cold caches, as a request arriving at a busy daemon would.
void QueueLengths(benchmark::internal::Benchmark* b) {
  b->Arg(0)->Arg(10'000)->Arg(100'000)->Iterations(100)->Unit(benchmark::kMicrosecond);
}

// Abort a build with N queued jobs and 2 running: from the call until the abort answers
// (the running jobs die as soon as they are signalled). Must not grow with N: the queue is
// detached in one step and its records are finished later by the sweep (BM_SweepAfterAbort).
void BM_AbortWithQueue(benchmark::State& state) {
  const int queued = static_cast<int>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    auto fake = std::make_unique<FakeEngine>(Options(2));
    (void)fake->engine->Submit("b", Batch(2 + queued), Caller{});
    Answer answer;
    ColdCaches();
    state.ResumeTiming();
    fake->engine->AbortAsync("b", Reason("bench"), answer.Callback());
    fake->spawner->DeliverSignals();
    if (!answer.done()) state.SkipWithError("abort did not answer");
    state.PauseTiming();
    fake.reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_AbortWithQueue)->Apply(QueueLengths);

// Fail-fast: a checked job fails with N queued behind it and a barrier waiting; from the
// failure until the barrier answers (the other running job dies as soon as it is signalled).
void BM_FailWithQueue(benchmark::State& state) {
  const int queued = static_cast<int>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    auto fake = std::make_unique<FakeEngine>(Options(2));
    auto ids = fake->engine->Submit("b", Batch(2 + queued), Caller{});
    Answer wait;
    fake->engine->WaitAsync("b", "", wait.Callback());
    ColdCaches();
    state.ResumeTiming();
    fake->spawner->Exit(ids->front(), 1);
    fake->spawner->DeliverSignals();
    if (!wait.done()) state.SkipWithError("the barrier did not answer");
    state.PauseTiming();
    fake.reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_FailWithQueue)->Apply(QueueLengths);

// What the abort no longer pays: the sweep that finishes the N cancelled records afterwards,
// all its chunks (each its own hold of the lock, on the clock's thread in the daemon).
void BM_SweepAfterAbort(benchmark::State& state) {
  const int queued = static_cast<int>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    auto fake = std::make_unique<FakeEngine>(Options(2));
    (void)fake->engine->Submit("b", Batch(2 + queued), Caller{});
    fake->engine->AbortAsync("b", Reason("bench"), [](absl::StatusOr<BuildInfo>) {});
    fake->spawner->DeliverSignals();
    state.ResumeTiming();
    fake->clock->Advance(absl::ZeroDuration());
    state.PauseTiming();
    if (fake->clock->pending() != 0) state.SkipWithError("the sweep did not end");
    fake.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * queued);
}
BENCHMARK(BM_SweepAfterAbort)->Arg(100'000)->Iterations(30)->Unit(benchmark::kMillisecond);

// Submit one job behind a queue of N and cancel it (a foreground client's Ctrl-C while it
// waits for a slot): the cancel searches the build's queue from the front.
void BM_SubmitAndCancelBehindQueue(benchmark::State& state) {
  FakeEngine fake(Options(1));
  (void)fake.engine->Submit("b", Batch(1 + static_cast<int>(state.range(0))), Caller{});
  for (auto _ : state) {
    auto ids = fake.engine->Submit("b", Batch(1), Caller{});
    (void)fake.engine->CancelJob(ids->front());
  }
}
BENCHMARK(BM_SubmitAndCancelBehindQueue)->Arg(0)->Arg(1000)->Arg(100'000);

// One chunk of output into a running job with a live watcher.
class NullWatcher : public JobWatcher {};
void BM_OutputChunk(benchmark::State& state) {
  FakeEngine fake(Options(1));
  NullWatcher watcher;
  auto ids = fake.engine->Submit("b", Batch(1), Caller{}, &watcher);
  const std::string chunk(static_cast<size_t>(state.range(0)), 'x');
  for (auto _ : state) fake.spawner->Output(ids->front(), OutputStream::kStdout, chunk);
  state.SetBytesProcessed(state.iterations() * state.range(0));
  fake.spawner->Exit(ids->front(), 0);
}
BENCHMARK(BM_OutputChunk)->Arg(4096)->Arg(64 * 1024);

}  // namespace
}  // namespace distd::engine

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
