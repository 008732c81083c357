/*
 * deadlock_2015.pml -- dying.pml with the 2015 Go cmd/dist bug put back.
 *
 * Go's bootstrap driver cmd/dist ran build commands on `maxbg` background workers
 * (bghelper goroutines reading closures from the `bgwork` channel); `bgwait` was the barrier,
 * `fatal` the abort, called from inside a worker when a checked command failed.  The change
 * "cmd/dist: fix deadlock when compilation command fails" (2015) fixed a hang of this shape:
 * the failure path waited for the background work to wind down through the workers, and the
 * barrier's own work items sat in the queue behind pending commands -- while the workers, once
 * the build was failing, no longer worked through that queue.  Nothing drained; everything
 * waited.  The fix gave the failure a `dying` channel that the waiting side selects on, so
 * that a barrier is released at once and the failure waits only for commands actually running,
 * however long the queue (docs/design.md: "must not deadlock and must not wait for the queue to
 * drain").  This file models that class of bug in the engine's own terms, not Go's code.
 *
 * The engine's dying step is that fix.  This variant undoes it in the two places marked
 * "2015" in dying.pml:
 *   - Engine::StartDyingLocked takes the build off the ring (the workers take none of its
 *     work any more) but neither cancels its queue nor releases its barrier waiters: they
 *     keep waiting for their jobs, queued ones included (bgwait on its WaitGroup);
 *   - Engine::MaybeDeadLocked declares the build dead, completing the aborts, only when its
 *     queue has drained as well (fatal's wait for the workers).
 * Everything else -- the mutex, the pool, the processes, the clients -- is dying.pml's.
 *
 * Expected: spin reports an invalid end state (errors: 1) with a trail such as: the first
 * Submit starts 3 jobs and queues the 4th, a waiter waits on the barrier, a job exits non-zero
 * (the build is dying), the other two are stopped and exit; job 4 stays queued forever, no
 * slot will take it, and the waiter (and any abort) blocks forever.
 *
 * The invariant monitor of dying.pml is left out here: its invariants ("dying -> the queue
 * is cancelled and the barrier released", ...) state the fix itself and would merely report
 * its absence as an assertion; without it, spin shows the consequence users saw, the hang.
 */
#define DEADLOCK_2015 1
#include "dying.pml"
