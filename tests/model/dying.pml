/*
 * dying.pml -- a Promela model of the dying protocol of distd's engine
 * (server/engine/dying.cc and the files it names, server/engine/engine.h), as the code
 * implements it.
 *
 * Checked by tests/model/check.sh with spin 6.5; see tests/model/README.md.
 *
 * What is modelled
 *   - One build (the fail-fast scope) with its queue (Build::queue), its barrier
 *     (Build::barrier: unfinished job ids and barrier waiters, both FIFO), its death waiters
 *     (Build::death_waiters), its running set (Build::running, as a count) and its first
 *     failure (Build::failure).  The build's life: running -> dying -> dead -> closed, and a
 *     new build of the same name after Close.
 *   - The host-wide pool: at most NSLOTS jobs run (Engine::running_ < pool_size_).  Each of
 *     the NSLOTS `Process` processes is one pool slot: the child process of a running job
 *     plus the spawner thread that reaps it and calls Engine::OnProcessExit.  A job may exit
 *     0 or non-zero at any moment (non-zero = "a job failing inside a worker"); a job whose
 *     program cannot be spawned fails inside StartLocked (Outcome::kCannotStart).
 *   - Clients: NWAITERS `distctl wait` (Engine::WaitAsync), NABORTERS `distctl abort`
 *     (Engine::AbortAsync; one in kill mode, one in drain mode), one late `distctl run --bg`
 *     racing the aborts and failures (Engine::Submit), one `distctl build close`
 *     (Engine::Close).  `init` makes the build's first request: Submit of NINIT jobs.
 *
 * The mutex
 *   Every public Engine method takes mu_ and does all of its state changes before releasing
 *   it.  Each such critical section is modelled as ONE d_step: no other process can observe
 *   or interleave with an intermediate state, which is exactly what holding mu_ guarantees
 *   (every variable below is ABSL_GUARDED_BY(mu_) in the code).  What happens after mu_ is
 *   released -- the waiter callbacks in `Deferred`, the caller then returning -- is a
 *   separate step of the client process, so other steps can interleave there.
 *
 * Not modelled (do not affect the protocol's shape): several builds sharing the pool and
 *   the round-robin ring (with one build, ring_ is {build} or {} = Build::in_ring), groups
 *   (a group barrier is one more Barrier handled like the build's), CancelJob, CancelWaiter,
 *   timeouts and the SIGKILL timer (modelled as: a stopped job still exits, at any time, with
 *   any status), observers, output, eviction of job records, the queue limit, Shutdown.
 *
 * Properties (see README.md for how each is checked)
 *   P1 never more than NSLOTS jobs run, and no job of a dying or dead build is spawned;
 *   P2 an abort returns only when no job of its build runs (the build is dead);
 *   P3 once the build is dying every waiter is released: no waiter is left on the barrier
 *      (it waits only for the running jobs, never for queued ones), the queue is empty, and
 *      when the build is dead no waiter is pending at all; no waiter ever blocks forever
 *      (invalid end states) and, as LTL, each eventually returns;
 *   P4 a failure is never lost: after it, the build stays dying/dead with that first failure
 *      until Close, and refuses submits naming it;
 *   P5 a barrier that passes (no failure) saw every job submitted before it finish.
 *
 * deadlock_2015.pml #defines DEADLOCK_2015 and #includes this file: the places marked
 * "2015" then behave like the pre-fix cmd/dist, and spin finds the deadlock.
 */

/* ---------------------------------------------------------------- sizes */
#define NSLOTS     3   /* EngineOptions::jobs = pool_size_: the workers (INV_POOL and
                          init list the slots one by one: change them with it) */
#define NWAITERS   2   /* clients in `distctl wait` */
#define NABORTERS  2   /* clients in `distctl abort` (client NWAITERS: kill, next: drain) */
#define NCLIENTS   (NWAITERS + NABORTERS)
#ifndef NINIT
#define NINIT      4   /* jobs of the first Submit: one more than the pool, so one is queued */
#endif
#ifndef NLATE
#define NLATE      1   /* jobs of the racing Submit */
#endif
/* (NINIT and NLATE may be changed freely, e.g. spin -DNINIT=6 -a dying.pml; the other sizes
   are also spelled out in INV_POOL, init and the LTL formulas.) */
#define MAXJ       (NINIT + NLATE)   /* job ids are 1..MAXJ (Engine::last_job_id_) */

/* ---------------------------------------------------------------- enums */
/* BuildState */
#define B_RUNNING  0
#define B_DYING    1
#define B_DEAD     2
/* JobState (J_NONE: id not handed out yet) */
#define J_NONE     0
#define J_QUEUED   1
#define J_RUNNING  2
#define J_FINISHED 3
/* Outcome of a finished process / job.  kKilled is O_FAILED with `stopped` set (the engine
   treats both the same way: IsFailure, and `result.stopped = job->stopped_on_request`). */
#define O_SUCCEEDED   1
#define O_FAILED      2
#define O_CANNOTSTART 3
#define IsFailure(o)  ((o) == O_FAILED || (o) == O_CANNOTSTART)   /* types.cc IsFailure */
/* What a waiter's callback receives */
#define R_NONE     0
#define R_OK       1   /* barrier passed, build running, no failure */
#define R_DEAD     2   /* BuildInfo of a dead build: its first failure */
#define R_NOTFOUND 3   /* no build of that name (never created, or closed) */
/* Build::failure: F_NONE, a job id 1..MAXJ (the job that failed), or F_ABORT + client */
#define F_NONE     0
#define F_ABORT    100
/* AbortMode */
#define KILL       0
#define DRAIN      1

/* ---------------------------------------------------------------- engine state (under mu_) */
byte running_;                 /* Engine::running_: running jobs of every build */
byte queued_;                  /* Engine::queued_ */
byte last_job_id_;             /* Engine::last_job_id_ */

bool bexists;                  /* builds_ holds the build (false: never created, or closed) */
byte bgen;                     /* which incarnation of the name (ghost: 1, 2 after a Close) */
byte bstate;                   /* Build::state */
bool in_ring;                  /* Build::in_ring: the build has queued work for DispatchLocked */
byte brunning;                 /* Build::running.size() */
byte bfailure;                 /* Build::failure (its first failure) */
chan bqueue        = [MAXJ] of { byte };       /* Build::queue, job ids */
chan bunfinished   = [MAXJ] of { byte };       /* Build::barrier.unfinished, job ids */
chan bwaiters      = [NWAITERS] of { byte };   /* Build::barrier.waiters, client ids */
chan death_waiters = [NCLIENTS] of { byte };   /* Build::death_waiters, client ids */

byte jstate[MAXJ + 1];         /* Job::state */
bool jstop_req[MAXJ + 1];      /* Job::stopped_on_request (set with Job::stopping here) */
bool jbad[MAXJ + 1];           /* the job's program cannot be spawned (fixed by init) */

byte wtarget[NCLIENTS];        /* Waiter::target */
bool wcompleted[NCLIENTS];     /* Waiter::completed */
byte wresult[NCLIENTS];        /* what Waiter::done was called with */

/* ---------------------------------------------------------------- the spawner's side */
byte slot_job[NSLOTS];         /* job whose process occupies pool slot s (0: free) */

/* ---------------------------------------------------------------- ghosts, for properties */
byte gfail;                    /* the failure recorded when the build started dying */
byte wgen[NCLIENTS];           /* incarnation a client's request reached */
bool wreturned[NCLIENTS];      /* the client's call has returned */

/* Scratch variables of the critical sections; each is only used inside one d_step (one
   transition), so it need not be part of the state vector. */
hidden byte _i, _k, _s, _dj, _cj, _cw, _bj, _bw, _mw, _pj;
/* (Every d_step below ends in `skip`: a `break` out of a loop that ends a d_step would
   otherwise jump out of it, which spin refuses.) */

/* Vacuity checks (check.sh --vacuity): REACH(n, cond) marks an event the properties above
   must be checked against.  Built with -DREACH_TEST=n, it asserts that event n never happens,
   and spin must then find it happening: proof that the run covers it.  Normally a no-op. */
#ifdef REACH_TEST
#define REACH(n, cond) assert(REACH_TEST != (n) || !(cond))
#else
#define REACH(n, cond) skip
#endif

/* ================================================================ Engine::*Locked helpers */

/* Engine::CompleteWaiterLocked: marks the waiter completed and (for an async waiter) defers
   its callback until mu_ is released; the client process then returns in its own step. */
inline CompleteWaiterLocked(w, r) {
  assert(!wcompleted[w]);                          /* exactly once */
  if
  :: r == R_OK ->
       /* P5: a passed barrier: the build is running and every job up to the waiter's target
          has finished. */
       assert(bstate == B_RUNNING);
       _k = 1;
       do
       :: _k <= wtarget[w] -> assert(jstate[_k] == J_FINISHED); _k++
       :: else -> break
       od;
       printf("MSC: client %d answered: barrier passed\n", w);
       REACH(3, true)                              /* a barrier passed */
  :: r == R_DEAD ->
       assert(bstate == B_DEAD && brunning == 0);  /* P2/P3: answered only once nothing runs */
       printf("MSC: client %d answered: build dead, failure %d\n", w, bfailure)
  :: else -> skip
  fi;
  wresult[w] = r;
  wcompleted[w] = true
}

/* Engine::AdvanceBarrierLocked(build, ""): drop finished ids from the front of the barrier,
   then complete, front first, the waiters whose target lies below the first unfinished id. */
inline AdvanceBarrierLocked() {
  do
  :: len(bunfinished) > 0 ->
       bunfinished?<_bj>;
       if
       :: jstate[_bj] == J_FINISHED -> bunfinished?_bj
       :: else -> break
       fi
  :: else -> break
  od;
  if
  :: len(bunfinished) > 0 -> bunfinished?<_bj>
  :: else -> _bj = 255                             /* unfinished.empty() */
  fi;
  do
  :: len(bwaiters) > 0 ->
       bwaiters?<_bw>;
       if
       :: _bj > wtarget[_bw] -> bwaiters?_bw; CompleteWaiterLocked(_bw, R_OK)
       :: else -> break
       fi
  :: else -> break
  od
}

/* Engine::AddWaiterLocked: a dead build answers at once; an abort (a death waiter), or any
   waiter of a dying build, waits on the death list; a barrier waiter of a running build
   waits on the barrier (and may pass at once). */
inline AddWaiterLocked(w, barrier) {
  wtarget[w] = last_job_id_;
  if
  :: bstate == B_DEAD -> CompleteWaiterLocked(w, R_DEAD)
  :: bstate != B_DEAD && (!barrier || bstate == B_DYING) ->
       death_waiters!w;
       printf("MSC: client %d waits until the build is dead\n", w)
  :: bstate == B_RUNNING && barrier ->
       bwaiters!w;
       printf("MSC: client %d waits on the barrier for jobs 1..%d\n", w, wtarget[w]);
       AdvanceBarrierLocked()
  fi
}

/* Engine::StartDyingLocked: running -> dying in one step under mu_.  It records the first
   failure, leaves the ring, cancels the whole queue, and moves every barrier waiter to the
   death waiters (clearing the barrier), so that no waiter waits for queued work any more.
   The engine detaches the queue in O(1) (Build::doomed) and finishes the job records later
   (the sweep, or the first lookup of a job); but from this step on no doomed job can be
   spawned and every lookup sees it cancelled, so the per-job loop below is exactly the
   state everyone observes.  The records themselves are not modelled. */
inline StartDyingLocked(f) {
  assert(bstate == B_RUNNING && bfailure == F_NONE && gfail == F_NONE);  /* P4: only once */
  bstate = B_DYING;
  bfailure = f;
  gfail = f;
  /* failure: a job id, or 100 + the aborting client */
  printf("MSC: build dying, failure %d; %d queued, %d on the barrier\n", f, len(bqueue),
         len(bwaiters));
  in_ring = false;                                 /* ring_.erase(build->ring_pos) */
#ifndef DEADLOCK_2015
  do                                               /* cancel every queued job */
  :: len(bqueue) > 0 ->
       bqueue?_cj; jstate[_cj] = J_FINISHED; queued_--;
       REACH(2, true);                             /* a queued job cancelled */
       REACH(8, _cj == MAXJ)                       /* the racing Submit's job cancelled */
  :: else -> break
  od;
  do                                               /* release(build->barrier) */
  :: len(bwaiters) > 0 ->
       bwaiters?_cw; death_waiters!_cw;
       REACH(1, f <= MAXJ)                         /* a barrier waiter released at a failure */
  :: else -> break
  od;
  do                                               /* build->barrier = Barrier() */
  :: len(bunfinished) > 0 -> bunfinished?_cj
  :: else -> break
  od
#else
  /* 2015: the queue is left in place, to drain through the workers ("letting workers pick
     cancelled jobs", the design the notes in dying.cc reject), and the barrier waiters stay
     on the barrier, waiting for their jobs -- queued ones included -- to finish.  But the
     build has left the ring: the workers take no more of its work (cmd/dist's bghelpers
     stop once nfatal > 0 / `dying` is closed). */
  skip
#endif
}

/* Engine::StopRunningLocked -> StopJobLocked: SIGTERM (SIGKILL after the grace) to every
   running job of the build, marked stopped_on_request so that its failure never fails the
   build.  The signal itself is modelled by the Process being free to exit at any time. */
inline StopRunningLocked() {
  _k = 1;
  do
  :: _k <= MAXJ ->
       if
       :: jstate[_k] == J_RUNNING -> jstop_req[_k] = true
       :: else -> skip
       fi;
       _k++
  :: else -> break
  od
}

/* Engine::MaybeDeadLocked: a dying build whose last running job has been reaped is dead;
   every death waiter is completed with its first failure. */
#ifdef DEADLOCK_2015
/* 2015: fatal/abort also waits for the queued work to drain (bgdied.Wait) */
#define QUEUE_DRAINED (len(bqueue) == 0)
#else
#define QUEUE_DRAINED true                         /* the queue was cancelled at dying */
#endif
inline MaybeDeadLocked() {
  if
  :: bstate == B_DYING && brunning == 0 && QUEUE_DRAINED ->
       bstate = B_DEAD;
       printf("MSC: build dead\n");
       do
       :: len(death_waiters) > 0 -> death_waiters?_mw; CompleteWaiterLocked(_mw, R_DEAD)
       :: else -> break
       od
  :: else -> skip
  fi
}

/* Engine::FinishLocked: the job leaves the running set; a checked failure of a running
   build (not one stopped on request) makes the build dying and stops its running jobs;
   otherwise the barrier advances while the build runs.  Then maybe the build is dead.
   (Every job is checked here: a background job's failure fails its build by default.) */
inline FinishLocked(j, outcome, stopped) {
  if
  :: jstate[j] == J_RUNNING -> running_--; brunning--
  :: else -> skip                                  /* kCannotStart: it never ran */
  fi;
  jstate[j] = J_FINISHED;
  /* a failure while dying and not stopped (drain): it does not replace the first one */
  REACH(12, IsFailure(outcome) && !(stopped) && bstate == B_DYING);  /* a later failure */
  if
  :: IsFailure(outcome) && !(stopped) && bstate == B_RUNNING ->
       StartDyingLocked(j);
       StopRunningLocked()
  :: else ->
       if
       :: bstate == B_RUNNING -> AdvanceBarrierLocked()
       :: else -> skip
       fi
  fi;
  MaybeDeadLocked()
}

/* Engine::StartLocked: spawner_->Start; a job whose program cannot be started finishes at
   once with kCannotStart (a failure: it fails the build); otherwise it runs in a free slot. */
inline StartLocked(j) {
  assert(bstate == B_RUNNING);                     /* P1: no job of a dying build is spawned */
  if
  :: jbad[j] ->
       printf("MSC: job %d cannot start\n", j);
       REACH(11, j == NINIT);                      /* spawn failure in OnProcessExit */
       FinishLocked(j, O_CANNOTSTART, false)
  :: else ->
       assert(running_ < NSLOTS);                  /* P1: the pool bound */
       jstate[j] = J_RUNNING;
       running_++;
       brunning++;
       _s = 0;
       do
       :: _s < NSLOTS && slot_job[_s] != 0 -> _s++
       :: else -> break
       od;
       assert(_s < NSLOTS);
       slot_job[_s] = j;
       printf("MSC: job %d started in slot %d\n", j, _s)
  fi
}

/* Engine::DispatchLocked: while the pool has a free slot and some build has queued work,
   pop the front job of the front build of the ring and start it. */
inline DispatchLocked() {
  do
  :: running_ < NSLOTS && in_ring ->
       in_ring = false;                            /* ring_.pop_front() */
       bqueue?_dj;
       queued_--;
       if
       :: len(bqueue) > 0 -> in_ring = true        /* ring_.push_back(build) */
       :: else -> skip
       fi;
       StartLocked(_dj)
  :: else -> break
  od
}

/* ================================================================ public Engine methods */

/* Engine::Submit: a dying or dead build refuses (RefusalLocked, naming its first failure);
   an unknown name creates the build; all n jobs are queued (and put on the barrier) in the
   same step, never half, then DispatchLocked starts what the pool allows. */
inline Submit(n) {
  if
  :: bexists && bstate != B_RUNNING ->
       assert(bfailure != F_NONE);                 /* P4: the refusal names the failure */
       printf("MSC: Submit refused, failure %d\n", bfailure);
       REACH(7, true)                              /* a Submit refused */
  :: else ->
       if
       :: !bexists ->                              /* FindBuildLocked == nullptr: create */
            assert(len(bqueue) == 0 && len(bunfinished) == 0 && len(bwaiters) == 0 &&
                   len(death_waiters) == 0 && brunning == 0 && !in_ring);
            bexists = true;
            bgen++;
            printf("MSC: build created (incarnation %d)\n", bgen);
            REACH(10, bgen == 2);                  /* the name reused after Close */
            bstate = B_RUNNING;
            bfailure = F_NONE;
            gfail = F_NONE
       :: else -> skip
       fi;
       assert(bstate == B_RUNNING && bfailure == F_NONE);
       _i = 0;
       do
       :: _i < n ->
            last_job_id_++;
            jstate[last_job_id_] = J_QUEUED;
            bqueue!last_job_id_;
            bunfinished!last_job_id_;
            printf("MSC: job %d queued\n", last_job_id_);
            _i++
       :: else -> break
       od;
       queued_ = queued_ + n;
       in_ring = true;                             /* if (!in_ring) ring_.push_front */
       DispatchLocked()
  fi
}

/* Engine::WaitAsync (and Wait): NotFound for an unknown build, else a barrier waiter. */
inline WaitAsync(w) {
  wgen[w] = bgen;
  if
  :: !bexists ->
       wresult[w] = R_NOTFOUND;
       wcompleted[w] = true;
       printf("MSC: client %d: no such build\n", w)
  :: else -> AddWaiterLocked(w, true)
  fi
}

/* Engine::AbortAsync (and Abort): NotFound for an unknown build; else the first abort of a
   running build starts dying, a kill abort stops the running jobs (escalating an earlier
   drain), and the caller becomes a death waiter, answered when the build is dead. */
inline AbortAsync(c, mode) {
  wgen[c] = bgen;
  if
  :: !bexists ->
       wresult[c] = R_NOTFOUND;
       wcompleted[c] = true;
       printf("MSC: client %d: no such build\n", c)
  :: else ->
       if
       :: mode == KILL -> printf("MSC: client %d aborts (kill)\n", c)
       :: else -> printf("MSC: client %d aborts (drain)\n", c)
       fi;
       if
       :: bstate == B_RUNNING -> StartDyingLocked(F_ABORT + c)
       :: else -> skip
       fi;
       if
       :: bstate == B_DYING && mode == KILL ->
            /* a kill abort escalating the drain abort */
            REACH(6, bfailure == F_ABORT + NWAITERS + 1 && brunning > 0);  /* kill after drain */
            StopRunningLocked()
       :: else -> skip
       fi;
       AddWaiterLocked(c, false);
       MaybeDeadLocked();
       REACH(5, !wcompleted[c] && brunning > 0)    /* an abort waiting for running jobs */
  fi
}

/* Engine::Close: forgets a build with nothing queued or running (a dead one, or an idle
   running one); FailedPrecondition otherwise; NotFound if unknown. */
inline Close() {
  if
  :: !bexists -> printf("MSC: Close: no such build\n")                   /* NotFound */
  :: bexists && (len(bqueue) > 0 || brunning > 0) ->
       printf("MSC: Close refused: %d queued, %d running\n", len(bqueue), brunning)
  :: bexists && len(bqueue) == 0 && brunning == 0 ->
       /* builds_.erase: nothing may still wait on the build being destroyed */
       assert(len(bwaiters) == 0 && len(death_waiters) == 0 && !in_ring);
       assert(bstate != B_DYING);
       REACH(9, bstate == B_DEAD);                 /* a dead build closed */
       bexists = false;
       printf("MSC: build closed\n");
       do                                          /* ~Build: its barrier goes with it */
       :: len(bunfinished) > 0 -> bunfinished?_cj
       :: else -> break
       od
  fi
}

/* Engine::OnProcessExit: called by the spawner once the job's process has been reaped. */
inline OnProcessExit(s, outcome) {
  _pj = slot_job[s];
  slot_job[s] = 0;
  if
  :: outcome == O_FAILED -> printf("MSC: job %d exits non-zero (stopped on request: %d)\n", _pj,
                                   jstop_req[_pj])
  :: else -> printf("MSC: job %d exits 0 (stopped on request: %d)\n", _pj, jstop_req[_pj])
  fi;
  assert(jstate[_pj] == J_RUNNING);
  FinishLocked(_pj, outcome, jstop_req[_pj]);      /* result.stopped = stopped_on_request */
  DispatchLocked()
}

/* ================================================================ processes */

/* One pool slot: the process of a running job, which exits at a moment and with a status
   of its own choosing (0, or non-zero: the job failing inside the worker), and the spawner
   thread reaping it.  Idle, it is in a valid end state. */
proctype Process(byte s) {
end_idle:
  do
  :: d_step { slot_job[s] != 0 -> OnProcessExit(s, O_FAILED); skip }
  :: d_step { slot_job[s] != 0 -> OnProcessExit(s, O_SUCCEEDED); skip }
  od
}

/* `distctl wait`: Engine::WaitAsync; the callback runs after mu_ is released.  Blocked on
   wcompleted forever = a waiter never released: spin reports an invalid end state. */
proctype Waiter(byte w) {
  d_step { WaitAsync(w); skip };
  wcompleted[w];
  d_step {
    /* P3: a waiter told of the failure returns only once nothing of the build runs */
    assert(wresult[w] != R_DEAD || !bexists || bgen != wgen[w] ||
           (bstate == B_DEAD && brunning == 0));
    wreturned[w] = true;
    REACH(4, wresult[w] == R_DEAD && bexists && bgen == wgen[w]);  /* waiter gets failure */
    printf("MSC: waiter %d returns\n", w)
  }
}

/* `distctl abort` (kill or drain): Engine::AbortAsync. */
proctype Aborter(byte c; byte mode) {
  d_step { AbortAsync(c, mode); skip };
  wcompleted[c];
  d_step {
    /* P2: an abort returns only when no job of its build is running: the build is dead
       (unless it has since been closed -- a closed build has no jobs either) */
    assert(wresult[c] == R_DEAD || wresult[c] == R_NOTFOUND);
    assert(wresult[c] != R_DEAD || !bexists || bgen != wgen[c] ||
           (bstate == B_DEAD && brunning == 0));
    wreturned[c] = true;
    printf("MSC: aborter %d returns\n", c)
  }
}

/* `distctl run --bg` racing the aborts and failures: lands before the build dies (its job is
   run or cancelled with the rest), while it is dying or dead (refused), or after Close (a
   new build of the same name). */
proctype Submitter() {
  d_step { Submit(NLATE); skip }
}

/* `distctl build close`, once, at any moment. */
proctype Closer() {
  d_step { Close(); skip }
}

#ifndef DEADLOCK_2015
/* Invariants of every state in which mu_ is free (between d_steps).  The monitor can fire
   in any state where one is false; otherwise it stays blocked in a valid end state. */
#define INV_POOL   (running_ <= NSLOTS && running_ == brunning && queued_ == len(bqueue) && \
                    (slot_job[0] != 0) + (slot_job[1] != 0) + (slot_job[2] != 0) == running_)
#define INV_DYING  (!bexists || bstate == B_RUNNING || \
                    (len(bqueue) == 0 && len(bwaiters) == 0 && len(bunfinished) == 0 && !in_ring))
#define INV_REAPED (!bexists || bstate != B_DYING || brunning > 0)
#define INV_DEAD   (!bexists || bstate != B_DEAD || (brunning == 0 && len(death_waiters) == 0))
#define INV_FAIL   (!bexists || (gfail == F_NONE && bstate == B_RUNNING && bfailure == F_NONE) || \
                    (gfail != F_NONE && bstate != B_RUNNING && bfailure == gfail))

proctype Invariants() {
end_inv:
  atomic {
    !(INV_POOL && INV_DYING && INV_REAPED && INV_DEAD && INV_FAIL) ->
      assert(INV_POOL);     /* P1: pool bound; the counters agree */
      assert(INV_DYING);    /* P3: dying -> queue cancelled, every barrier waiter released */
      assert(INV_REAPED);   /* notes 3: dying only while a job of the build still runs */
      assert(INV_DEAD);     /* P2/P3: dead -> nothing runs, no death waiter left */
      assert(INV_FAIL)      /* P4: the first failure stays until Close */
  }
}
#endif

init {
  /* At most one job of the run is one whose program cannot be spawned. */
  if
  :: skip
  :: jbad[1] = true        /* fails in the first Submit's DispatchLocked */
  :: jbad[NINIT] = true    /* the queued one: fails in an OnProcessExit's DispatchLocked */
  :: jbad[MAXJ] = true     /* the late one: fails in its own Submit */
  fi;
  d_step { Submit(NINIT); skip };  /* the build's first request: NSLOTS run, the rest queue */
  /* (The order of the runs only orders spin's depth-first search -- the last process run
     is tried first -- and so which counterexample of deadlock_2015.pml is found first.) */
  atomic {
#ifndef DEADLOCK_2015
    run Invariants();
#endif
    run Closer();
    run Submitter();
    run Aborter(NWAITERS, KILL);
    run Aborter(NWAITERS + 1, DRAIN);
    run Process(0);
    run Process(1);
    run Process(2);
    run Waiter(0);
    run Waiter(1)
  }
}

/* ================================================================ LTL (liveness) */
/* Checked by a separate pan built without -DSAFETY (./pan -a -f -N name); the safety run
   builds pan with -DNOCLAIM, which leaves the claims out.  The model's state graph has no
   cycles (every run ends: finitely many jobs and requests), so these formulas are decided on
   the maximal finite runs, which spin extends by stuttering in their last state. */

/* Every client's call returns, eventually. */
ltl all_return {
  <> (wreturned[0] && wreturned[1] && wreturned[2] && wreturned[3])
}

/* Once the build is dying, eventually no waiter of it is pending. */
ltl dying_releases {
  [] ((bexists && bstate == B_DYING) ->
        <> (!bexists || (len(bwaiters) == 0 && len(death_waiters) == 0)))
}
