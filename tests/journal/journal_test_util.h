// What the journal's tests share.
#ifndef DISTD_TESTS_JOURNAL_JOURNAL_TEST_UTIL_H_
#define DISTD_TESTS_JOURNAL_JOURNAL_TEST_UTIL_H_

#include "absl/time/time.h"
#include "server/journal/recorder.h"

namespace distd::journal {

// A recorder that tries a failed write again after `min`, backing off to at most `max`: a
// test's full disk clears in milliseconds, not seconds.
inline RecorderOptions QuickRetries(absl::Duration min, absl::Duration max) {
  RecorderOptions options;
  options.retry_min = min;
  options.retry_max = max;
  return options;
}

}  // namespace distd::journal

#endif  // DISTD_TESTS_JOURNAL_JOURNAL_TEST_UTIL_H_
