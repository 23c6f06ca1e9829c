/*
 * threadpool.c - the CPU backend's single threading layer: a fixed set of
 * worker threads; the caller works too, so a pool of n threads runs n-1
 * workers. A job's tasks are cut into one contiguous range per thread,
 * each with its own counter; a thread runs its own range first, then
 * takes what is left of the others'. So thread s runs the same part of
 * the data in consecutive ops (the tasks of most ops follow memory order),
 * which stays in its core's cache, where one shared counter handed tasks
 * out in arrival order and moved data between cores (on a VM whose two
 * cores shared no cache, ReLU and pooling ran 2x slower on two threads
 * than on one). Results never depend on which thread runs a task. The pool also
 * owns one scratch slice per thread (tc__cpu_scratch), so ops that pack
 * operands need neither allocation per call nor large thread-local arrays
 * (those would cost every thread of the user's program memory).
 *
 * Several user threads may call ops on one backend at once
 * (docs/backends.md, "Threads"). A job's fields, the workers and scratch
 * slice 0 (the caller's) serve one job at a time, so tc__cpu_parallel_for
 * holds the pool's job lock from submission to the end of the job, inline
 * runs included: a second caller waits for the job in flight, then runs
 * its own. Results never depend on which thread runs a task, so each
 * caller gets the bits it would get alone; the lock costs one uncontended
 * mutex per job on a single-threaded program.
 */
#include <pthread.h>
#include <stdlib.h>

#include "cpu.h"

/* How long a worker keeps polling for the next job, and the caller for the
 * workers to finish, before sleeping on a condition variable, in pause
 * instructions (1024: ~15 us here). A training step issues dozens of short
 * jobs back to back and waking a sleeping thread costs about as much as a
 * small job: polling made LeNet training 1.2x and inference 1.3x faster on
 * an idle 2-core machine. On a machine whose cores are all busy, polling
 * steals time from the thread doing the work (small models lost 5-15 %
 * with one core taken; 4096 lost 33 %), hence the short default and the
 * TINYCNN_POOL_SPIN environment variable (0 = sleep at once; read when a
 * pool is made; at most 1 << 20). */
#define POOL_SPIN_DEFAULT 1024
#define POOL_SPIN_MAX (1 << 20)

/* One thread's share of the current job: tasks [next, end) not yet taken.
 * Padded so the counters of different threads share no cache line. */
typedef struct pool_range {
  atomic_llong next;
  int64_t end;
  char pad[128 - sizeof(atomic_llong) - sizeof(int64_t)];
} pool_range;

struct cpu_pool {
  /* held by the thread whose job runs (tc__cpu_parallel_for), the whole job */
  pthread_mutex_t job_lock;
  pthread_mutex_t lock;
  pthread_cond_t wake, done;
  pthread_t *threads;
  int n_workers;
  /* current job: written by the caller before job_id is bumped (release),
   * read by workers after they see the new id (acquire) */
  cpu_task_fn fn;
  void *arg;
  int64_t n_tasks;
  pool_range *range;    /* n_workers + 1, indexed by pool_slot */
  atomic_int active;    /* workers still inside the job */
  atomic_ullong job_id; /* bumped for each job; workers wait for a new one */
  atomic_int quit;
  int spin;       /* polling rounds before sleeping */
  int started;    /* workers that took their scratch slot */
  float *scratch; /* (n_workers + 1) slices of CPU_SCRATCH_FLOATS */
};

/* This thread's scratch slice in its pool: workers are 1..n_workers, any
 * other thread (the caller of tc__cpu_parallel_for) is 0. A worker only ever
 * runs its own pool's tasks. */
static _Thread_local int pool_slot;
/* Tasks this thread has run in the current job (tc__cpu_task_first). */
static _Thread_local int64_t job_tasks_run;
/* The pool whose job this thread is running: as its worker, or as the
 * caller holding its job lock. A task that calls tc__cpu_parallel_for on the
 * same pool runs the inner job inline (waiting for the lock it holds, or
 * for workers busy with the outer job, would never end). */
static _Thread_local cpu_pool *job_pool;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Thread `slot`'s own range, then the others' leftovers in turn. */
static void run_tasks(cpu_pool *p, cpu_task_fn fn, void *arg, int slot) {
  int parts = p->n_workers + 1;
  job_tasks_run = 0;
  for (int k = 0; k < parts; k++) {
    pool_range *r = &p->range[(slot + k) % parts];
    for (;;) {
      int64_t t = atomic_fetch_add_explicit(&r->next, 1, memory_order_relaxed);
      if (t >= r->end)
        break;
      fn(arg, t);
      job_tasks_run++;
    }
  }
}

/* Waits until job_id differs from `seen` or the pool quits; returns the
 * new id. */
static uint64_t wait_for_job(cpu_pool *p, uint64_t seen) {
  for (int i = 0; i < p->spin; i++) {
    uint64_t id = atomic_load_explicit(&p->job_id, memory_order_acquire);
    if (id != seen || atomic_load_explicit(&p->quit, memory_order_relaxed))
      return id;
    cpu_relax();
  }
  /* the caller bumps job_id, then broadcasts holding the lock: checking
   * under the lock cannot miss the wake-up */
  uint64_t id;
  pthread_mutex_lock(&p->lock);
  while ((id = atomic_load_explicit(&p->job_id, memory_order_acquire)) ==
             seen &&
         !atomic_load_explicit(&p->quit, memory_order_relaxed))
    pthread_cond_wait(&p->wake, &p->lock);
  pthread_mutex_unlock(&p->lock);
  return id;
}

static void *worker(void *vp) {
  cpu_pool *p = vp;
  uint64_t seen = 0;
  pthread_mutex_lock(&p->lock);
  pool_slot = ++p->started;
  pthread_mutex_unlock(&p->lock);
  job_pool = p;
  for (;;) {
    seen = wait_for_job(p, seen);
    if (atomic_load_explicit(&p->quit, memory_order_relaxed))
      break;
    run_tasks(p, p->fn, p->arg, pool_slot);
    /* the last one out wakes a caller that stopped polling */
    if (atomic_fetch_sub_explicit(&p->active, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&p->lock);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->lock);
    }
  }
  return NULL;
}

/* TINYCNN_POOL_SPIN when it is a number in [0, POOL_SPIN_MAX], else the
 * default. */
static int pool_spin(void) {
  const char *e = getenv("TINYCNN_POOL_SPIN");
  if (!e || !*e)
    return POOL_SPIN_DEFAULT;
  char *end;
  long v = strtol(e, &end, 10);
  if (*end || v < 0 || v > POOL_SPIN_MAX)
    return POOL_SPIN_DEFAULT;
  return (int)v;
}

tc_status tc__cpu_pool_create(cpu_pool **out, int n_threads) {
  cpu_pool *p = tc__calloc(1, sizeof *p);
  if (!p)
    return tc__oom("cpu backend");
  int n_workers = n_threads > 1 ? n_threads - 1 : 0;
  if (n_workers) {
    p->threads = tc__calloc((size_t)n_workers, sizeof *p->threads);
    if (!p->threads) {
      tc__free(p);
      return tc__oom("cpu backend");
    }
  }
  p->scratch =
      tc__calloc((size_t)(n_workers + 1) * CPU_SCRATCH_FLOATS, sizeof(float));
  p->range = tc__calloc((size_t)(n_workers + 1), sizeof *p->range);
  if (!p->scratch || !p->range) {
    tc__free(p->scratch);
    tc__free(p->range);
    tc__free(p->threads);
    tc__free(p);
    return tc__oom("cpu backend");
  }
  for (int i = 0; i <= n_workers; i++)
    atomic_init(&p->range[i].next, 0);
  pthread_mutex_init(&p->job_lock, NULL);
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  atomic_init(&p->active, 0);
  atomic_init(&p->job_id, 0);
  atomic_init(&p->quit, 0);
  p->spin = pool_spin();
  for (int i = 0; i < n_workers; i++) {
    if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
      p->n_workers = i;
      tc__cpu_pool_destroy(p);
      return tc__error(TC_EBACKEND, "cpu backend: cannot start thread %d", i);
    }
    p->n_workers = i + 1;
  }
  *out = p;
  return TC_OK;
}

void tc__cpu_pool_destroy(cpu_pool *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->lock);
  atomic_store(&p->quit, 1);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  for (int i = 0; i < p->n_workers; i++)
    pthread_join(p->threads[i], NULL);
  pthread_mutex_destroy(&p->job_lock);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  tc__free(p->threads);
  tc__free(p->scratch);
  tc__free(p->range);
  tc__free(p);
}

int tc__cpu_pool_size(const cpu_pool *p) {
  return p->n_workers + 1;
}

int tc__cpu_task_thread(void) {
  return pool_slot;
}

int tc__cpu_task_first(void) {
  return job_tasks_run == 0;
}

float *tc__cpu_scratch(cpu_ctx *ctx) {
  return ctx->pool->scratch + (size_t)pool_slot * CPU_SCRATCH_FLOATS;
}

/* Runs the tasks on this thread alone. */
static void run_inline(int64_t n_tasks, cpu_task_fn fn, void *arg) {
  job_tasks_run = 0;
  for (int64_t t = 0; t < n_tasks; t++, job_tasks_run++)
    fn(arg, t);
}

/* The job on the pool's workers and this thread; the job lock is held. */
static void run_on_pool(cpu_pool *p, int64_t n_tasks, cpu_task_fn fn,
                        void *arg) {
  p->fn = fn;
  p->arg = arg;
  p->n_tasks = n_tasks;
  int parts = p->n_workers + 1;
  for (int i = 0; i < parts; i++) {
    atomic_store_explicit(&p->range[i].next, n_tasks * i / parts,
                          memory_order_relaxed);
    p->range[i].end = n_tasks * (i + 1) / parts;
  }
  atomic_store_explicit(&p->active, p->n_workers, memory_order_relaxed);
  atomic_fetch_add_explicit(&p->job_id, 1, memory_order_release);
  pthread_mutex_lock(&p->lock);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  run_tasks(p, fn, arg, pool_slot);
  for (int i = 0; i < p->spin; i++) {
    if (atomic_load_explicit(&p->active, memory_order_acquire) == 0)
      return;
    cpu_relax();
  }
  pthread_mutex_lock(&p->lock);
  while (atomic_load_explicit(&p->active, memory_order_acquire) > 0)
    pthread_cond_wait(&p->done, &p->lock);
  pthread_mutex_unlock(&p->lock);
}

void tc__cpu_parallel_for(cpu_ctx *ctx, int64_t n_tasks, cpu_task_fn fn,
                          void *arg) {
  cpu_pool *p = ctx->pool;
  if (n_tasks <= 0)
    return;
  if (job_pool == p) {
    /* nested in a task of this pool: keep the outer job's task count */
    int64_t outer = job_tasks_run;
    run_inline(n_tasks, fn, arg);
    job_tasks_run = outer;
    return;
  }
  cpu_pool *prev = job_pool; /* a task of another backend's pool */
  pthread_mutex_lock(&p->job_lock);
  job_pool = p;
  int want = tc__num_threads();
  if (n_tasks == 1 || p->n_workers == 0 || want <= 1)
    run_inline(n_tasks, fn, arg);
  else
    run_on_pool(p, n_tasks, fn, arg);
  job_pool = prev;
  pthread_mutex_unlock(&p->job_lock);
}
