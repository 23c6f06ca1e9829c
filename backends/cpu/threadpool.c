/*
 * threadpool.c - the CPU backend's single threading layer: a fixed set of
 * worker threads that pull task indices from a shared counter. The caller
 * works too, so a pool of n threads runs n-1 workers. The pool also owns
 * one scratch slice per thread (cpu_scratch), so ops that pack operands
 * need neither allocation per call nor large thread-local arrays (those
 * would cost every thread of the user's program memory).
 */
#include <pthread.h>

#include "cpu.h"

struct cpu_pool {
  pthread_mutex_t lock;
  pthread_cond_t wake, done;
  pthread_t *threads;
  int n_workers;
  /* current job */
  cpu_task_fn fn;
  void *arg;
  int64_t n_tasks;
  atomic_llong next;
  int active;      /* workers still inside the job */
  int started;     /* workers that took their scratch slot */
  uint64_t job_id; /* bumped for each job; workers wait for a new one */
  int quit;
  float *scratch; /* (n_workers + 1) slices of CPU_SCRATCH_FLOATS */
};

/* This thread's scratch slice in its pool: workers are 1..n_workers, any
 * other thread (the caller of cpu_parallel_for) is 0. A worker only ever
 * runs its own pool's tasks. */
static _Thread_local int pool_slot;

static void run_tasks(cpu_pool *p, cpu_task_fn fn, void *arg, int64_t n) {
  for (;;) {
    int64_t t = atomic_fetch_add(&p->next, 1);
    if (t >= n)
      break;
    fn(arg, t);
  }
}

static void *worker(void *vp) {
  cpu_pool *p = vp;
  uint64_t seen = 0;
  pthread_mutex_lock(&p->lock);
  pool_slot = ++p->started;
  pthread_mutex_unlock(&p->lock);
  pthread_mutex_lock(&p->lock);
  for (;;) {
    while (!p->quit && p->job_id == seen)
      pthread_cond_wait(&p->wake, &p->lock);
    if (p->quit)
      break;
    seen = p->job_id;
    cpu_task_fn fn = p->fn;
    void *arg = p->arg;
    int64_t n = p->n_tasks;
    pthread_mutex_unlock(&p->lock);
    run_tasks(p, fn, arg, n);
    pthread_mutex_lock(&p->lock);
    if (--p->active == 0)
      pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

tc_status cpu_pool_create(cpu_pool **out, int n_threads) {
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
  if (!p->scratch) {
    tc__free(p->threads);
    tc__free(p);
    return tc__oom("cpu backend");
  }
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  atomic_init(&p->next, 0);
  for (int i = 0; i < n_workers; i++) {
    if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
      p->n_workers = i;
      cpu_pool_destroy(p);
      return tc__error(TC_EBACKEND, "cpu backend: cannot start thread %d", i);
    }
    p->n_workers = i + 1;
  }
  *out = p;
  return TC_OK;
}

void cpu_pool_destroy(cpu_pool *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->lock);
  p->quit = 1;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  for (int i = 0; i < p->n_workers; i++)
    pthread_join(p->threads[i], NULL);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  tc__free(p->threads);
  tc__free(p->scratch);
  tc__free(p);
}

int cpu_pool_size(const cpu_pool *p) {
  return p->n_workers + 1;
}

float *cpu_scratch(cpu_ctx *ctx) {
  return ctx->pool->scratch + (size_t)pool_slot * CPU_SCRATCH_FLOATS;
}

void cpu_parallel_for(cpu_ctx *ctx, int64_t n_tasks, cpu_task_fn fn,
                      void *arg) {
  cpu_pool *p = ctx->pool;
  if (n_tasks <= 0)
    return;
  int want = tc__num_threads();
  if (n_tasks == 1 || p->n_workers == 0 || want <= 1) {
    for (int64_t t = 0; t < n_tasks; t++)
      fn(arg, t);
    return;
  }
  pthread_mutex_lock(&p->lock);
  p->fn = fn;
  p->arg = arg;
  p->n_tasks = n_tasks;
  atomic_store(&p->next, 0);
  p->active = p->n_workers;
  p->job_id++;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  run_tasks(p, fn, arg, n_tasks);
  pthread_mutex_lock(&p->lock);
  while (p->active > 0)
    pthread_cond_wait(&p->done, &p->lock);
  pthread_mutex_unlock(&p->lock);
}
