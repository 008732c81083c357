#include "server/engine/types.h"

namespace distd::engine {

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kNone:
      return "none";
    case Outcome::kSucceeded:
      return "succeeded";
    case Outcome::kFailed:
      return "failed";
    case Outcome::kKilled:
      return "killed";
    case Outcome::kTimedOut:
      return "timed_out";
    case Outcome::kCancelled:
      return "cancelled";
    case Outcome::kCannotStart:
      return "cannot_start";
    case Outcome::kLost:
      return "lost";
  }
  return "unknown";
}

bool IsFailure(Outcome outcome) {
  switch (outcome) {
    case Outcome::kFailed:
    case Outcome::kKilled:
    case Outcome::kTimedOut:
    case Outcome::kCannotStart:
    case Outcome::kLost:
      return true;
    case Outcome::kNone:
    case Outcome::kSucceeded:
    case Outcome::kCancelled:
      return false;
  }
  return false;
}

const char* BuildStateName(BuildState state) {
  switch (state) {
    case BuildState::kRunning:
      return "running";
    case BuildState::kDying:
      return "dying";
    case BuildState::kDead:
      return "dead";
  }
  return "unknown";
}

}  // namespace distd::engine
