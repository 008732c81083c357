// A local client's own stdout and stderr, opened by the daemon so that a foreground job's
// output is written there directly (engine::OutputTargets) instead of travelling in Output
// events and being copied again by distctl.
//
// The files are opened anew through /proc/PID/fd/N of the process that connected (its pid
// comes from SO_PEERCRED), which gives the daemon file descriptions of its own: they can be
// non-blocking without touching the client's. Only pipes (and FIFOs) and /dev/null are
// taken, and the type is checked on a handle that opens nothing (O_PATH) before the file is
// opened through that very handle: opening a regular file would give a fresh offset, a
// socket cannot be opened this way, and devices act on open (/dev/tty would be the daemon's
// own terminal, /dev/ptmx a new one, a tape rewinds). A terminal is left to distctl: a
// non-blocking write to a full one is cut short, and another job's line could then come
// between the two pieces, where distctl's blocking write keeps each piece whole; it would
// also escape the terminal's job control (a stopped or background distctl); and a terminal
// is slower than the relay anyway. The file must be the
// one the client named (device and inode), which catches a client whose fd changed meanwhile (or,
// mostly, a pid recycled since it connected). Opening needs the client's uid (or root), as reading
// /proc/PID/fd does: a daemon serves its own uid and root, and a root client's files stay closed to
// a daemon of another uid (their output is relayed).
#ifndef DISTD_SERVER_SERVICE_CLIENT_FILES_H_
#define DISTD_SERVER_SERVICE_CLIENT_FILES_H_

#include <memory>

#include "distd/v1/distd.pb.h"
#include "server/engine/types.h"

namespace distd::service {

// The targets for the files `request` offers, or null when none could be opened (that
// stream then travels as Output). Both streams naming one file get one fd, shared, so that
// the file gets them in the order they were read. `pid` 0: the client is not local.
std::shared_ptr<const engine::OutputTargets> OpenClientFiles(int pid,
                                                             const v1::RunRequest& request);

}  // namespace distd::service

#endif  // DISTD_SERVER_SERVICE_CLIENT_FILES_H_
