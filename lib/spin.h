/* SPDX-License-Identifier: MIT */
/*
 * The adaptive spin window of a thread that polls rings between sleeps,
 * after QEMU's adaptive polling. After a wake-up with requests in flight
 * the thread polls until the window passes without progress, then sleeps;
 * the window adapts to how long the next event took. The relay loop and
 * svqiso-proxy share it.
 */
#ifndef SVQ_SPIN_H
#define SVQ_SPIN_H

#include <stdbool.h>
#include <stdint.h>

/* Narrower than this, a window shuts; one that opens starts here. */
#define SVQ_SPIN_MIN_NS		4000ull

struct svq_spin {
	uint64_t max_ns;	/* the ceiling; 0: never spin */
	uint64_t cur_ns;	/* the window now, 0..max_ns */
	uint64_t idle_at;	/* svq_spin_now() when the thread last began to
				 * wait with requests in flight (a spin ran
				 * out, or none was tried); 0: not */
	uint64_t grows;		/* windows widened: the event came soon */
	uint64_t shrinks;	/* windows narrowed: it came late */
};

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t svq_spin_now(void);

/* A window of @max_ns, open at its widest. */
void svq_spin_init(struct svq_spin *s, uint64_t max_ns);

/*
 * svq_spin_should() - whether to poll instead of sleeping now: a ceiling is
 * set, the window is open and @in_flight (something is owed by a peer).
 * With the window shut it notes the time, so that the next wake-up can say
 * whether a spin would have caught it.
 */
bool svq_spin_should(struct svq_spin *s, bool in_flight);

/*
 * svq_spin_woken() - a wait returned: adapt the window to how long the
 * thread was idle with requests in flight before this event (the window it
 * spun, then the sleep). Longer than the ceiling: no spin would have caught
 * it, so the window halves (below SVQ_SPIN_MIN_NS it shuts). Within it: a
 * wider window would have, so it doubles (from shut, it opens at
 * SVQ_SPIN_MIN_NS), up to the ceiling.
 */
void svq_spin_woken(struct svq_spin *s);

/* A spin stopped at @now, its window gone by without progress: the next
 * event says whether a wider one would have caught it. */
static inline void svq_spin_ran_out(struct svq_spin *s, uint64_t now)
{
	s->idle_at = now;
}

/* One pass of a busy wait: let the core's other thread have it. */
static inline void svq_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* A spin that finds nothing to do for this long gives its CPU away once;
 * the next time after twice as long, and so on. */
#define SVQ_SPIN_YIELD_NS	4000ull

/* When a spin with nothing to do next gives its CPU away. */
struct svq_spin_yield {
	uint64_t at;		/* svq_spin_now() of the next sched_yield() */
	uint64_t gap;		/* from the last one */
};

/* The spin made progress at @now (or begins): the next yield comes
 * SVQ_SPIN_YIELD_NS after it. */
static inline void svq_spin_busy(struct svq_spin_yield *y, uint64_t now)
{
	y->gap = SVQ_SPIN_YIELD_NS;
	y->at = now + y->gap;
}

/*
 * svq_spin_relax() - one pass of a spin that found nothing to do, at @now:
 * svq_cpu_relax(); or, when @y says so, sched_yield(), the next one twice
 * as far off. A polling thread that shares its CPU with the thread it waits
 * for (a relay or a proxy beside the guest's vCPU) so lets that one run
 * soon instead of polling for it, while a long wait alone on its CPU costs
 * a few system calls, not one every few microseconds.
 * Return: whether it yielded.
 */
bool svq_spin_relax(struct svq_spin_yield *y, uint64_t now);

#endif
