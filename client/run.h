// Internal to `distctl run`: the foreground relay (run_foreground.cc) and the path logic of
// -C, apart from the flag handling in run.cc.
#ifndef DISTD_CLIENT_RUN_H_
#define DISTD_CLIENT_RUN_H_

#include <string>

#include "absl/strings/string_view.h"
#include "client/connect.h"
#include "distd/v1/distd.pb.h"

namespace distd::client {

// Runs `request` with the Run call: relays the job's stdout and stderr to ours as they
// arrive (those that distd does not write to our files itself, see OfferOwnFiles) and
// returns its exit code. SIGINT/SIGTERM/SIGHUP cancel the job (its result is still awaited,
// so that it is gone when distctl exits) and make it 128+signal; a reader of what we relay
// that goes away (EPIPE) does the same with SIGPIPE. (Where distd writes to our file, the
// job itself gets SIGPIPE, as in a shell pipe, and its code is passed through.)
int RunForeground(const Connection& connection, const v1::RunRequest& request);

// distctl's exit code for a job that ended with `result`, saying why on stderr when the code
// alone would not: its own code, 128+signal, 124 timed out, 127 program not found, 126 could
// not start, 125 never ran or lost (docs/cli.md).
int JobExitCode(const v1::JobResult& result);

// Offers our stdout and stderr (pipes, /dev/null) for distd to write the job's
// output to directly, where it can: those streams then never pass through distctl.
void OfferOwnFiles(v1::RunRequest* request);

// -C DIR against the client's `cwd`, as an absolute path resolved lexically: "." and ".."
// without looking at the disk, because the directory is the job's business (distd reports
// a missing one as 126) and a symlinked cwd should mean what the shell's `cd` meant.
std::string ResolveDirectory(absl::string_view cwd, absl::string_view dir);

}  // namespace distd::client

#endif  // DISTD_CLIENT_RUN_H_
