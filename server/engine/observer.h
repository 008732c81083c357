// How state changes leave the engine.
//
// Every change of a job or a build is reported to each EngineObserver (whatever records or
// shows the engine's state as it changes), and a job's own events also to the JobWatchers
// attached to it (a foreground `distctl run`, `distctl logs --follow`).
//
// Calls are made with the engine's lock held, which gives every observer one total order of
// events that matches the engine's state. In return an observer must:
//   - return quickly and never block (copy what it needs into its own queue);
//   - never call back into the Engine from the callback.
#ifndef DISTD_SERVER_ENGINE_OBSERVER_H_
#define DISTD_SERVER_ENGINE_OBSERVER_H_

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/engine/types.h"

namespace distd::engine {

class JobWatcher {
 public:
  virtual ~JobWatcher() = default;
  virtual void OnJobStarted(const JobInfo& /*job*/) {}
  virtual void OnJobOutput(JobId /*id*/, OutputStream /*stream*/, absl::string_view /*data*/) {}
  // Asked right after each OnJobOutput: true when the watcher cannot take more for now. The
  // engine then stops reading the job's output (the job blocks on its full pipe, as at a slow
  // terminal) until the watcher calls Engine::ResumeOutput or is detached.
  virtual bool Backlogged() { return false; }
  // The last call for this job; the watcher is detached afterwards.
  virtual void OnJobFinished(const JobInfo& /*job*/) {}
};

class EngineObserver : public JobWatcher {
 public:
  // The jobs of one Submit, in order: one call for the whole batch, so that an observer that
  // writes them somewhere can write them together.
  virtual void OnJobsQueued(absl::Span<const JobInfo> /*jobs*/) {}
  // These queued jobs of `build` were cancelled because it died (an abort or a failure); their
  // outcome is kCancelled, with the time the build died as ended_at. OnJobFinished is not
  // called for them: every such job is reported exactly once, here. The engine finishes a
  // dead build's queue lazily (see the notes in sweep.cc), so one dying build's jobs come in
  // several calls, in chunks, and may come after OnBuildDying and OnBuildDead: jobs with a
  // watcher before OnBuildDying, the rest as the sweep reaches them or when one is looked up
  // first. Every call for a build comes before its OnBuildClosed. (The build's counts in
  // BuildInfo include them from OnBuildDying on.) Every job still queued at OnBuildDying is
  // among them: an observer may take OnBuildDying as their cancellation.
  virtual void OnJobsCancelled(absl::string_view /*build*/, absl::Span<const JobId> /*ids*/) {}
  virtual void OnBuildDying(const BuildInfo& /*build*/) {}
  virtual void OnBuildDead(const BuildInfo& /*build*/) {}
  virtual void OnBuildClosed(absl::string_view /*build*/) {}
};

}  // namespace distd::engine

#endif  // DISTD_SERVER_ENGINE_OBSERVER_H_
