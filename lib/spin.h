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

/*
 * A shut window spins the whole ceiling once in this many waits with
 * requests in flight (a probe). The window learns only from how long the
 * sleeps took, and a thread that sleeps makes its peers answer later than
 * one that spins (each wake-up costs, the peer's most of all when it
 * shares the CPU): events that a spin of the ceiling catches can come
 * later than the ceiling once the thread sleeps, so the window narrows
 * until it shuts and would never open again. A probe that sees progress
 * opens it to twice the wait it saw (in SVQ_SPIN_MIN_NS doublings, at most
 * the ceiling).
 */
#define SVQ_SPIN_PROBE_EVERY	32u

struct svq_spin {
	uint64_t max_ns;	/* the ceiling; 0: never spin */
	uint64_t cur_ns;	/* the window now, 0..max_ns */
	uint64_t idle_at;	/* svq_spin_now() of the last progress before
				 * the thread began to wait with requests in
				 * flight (the spin's, or its start; when no
				 * spin was tried, the wait's start); 0: not */
	uint64_t grows;		/* windows widened: the event came soon */
	uint64_t shrinks;	/* windows narrowed: it came late */
	uint32_t waits;		/* waits with requests in flight since the
				 * last probe, while the window is shut */
	bool probe;		/* the next spin is a probe */
	uint64_t probes;	/* spins of the ceiling with the window shut */
	uint64_t reopened;	/* probes that saw progress and opened it */
	uint32_t shared;	/* yields left before the CPU counts as the
				 * thread's own again: SVQ_SPIN_SHARED_YIELDS
				 * after a yield let another thread run, one
				 * less after each that came straight back */
	uint64_t handoffs;	/* yields that let another thread run */
};

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t svq_spin_now(void);

/* A window of @max_ns, open at its widest. */
void svq_spin_init(struct svq_spin *s, uint64_t max_ns);

/*
 * svq_spin_should() - whether to poll instead of sleeping now: a ceiling is
 * set, @in_flight (something is owed by a peer), and the window is open or
 * a probe is due (SVQ_SPIN_PROBE_EVERY). With the window shut and no probe
 * it notes the time, so that the next wake-up can say whether a spin would
 * have caught it.
 */
bool svq_spin_should(struct svq_spin *s, bool in_flight);

/*
 * svq_spin_woken() - a wait returned: adapt the window to how long the
 * thread was idle with requests in flight before this event (the spin that
 * ran out, then the sleep). Longer than the ceiling: no spin would have caught
 * it, so the window halves (below SVQ_SPIN_MIN_NS it shuts). Within it: a
 * wider window would have, so it doubles (from shut, it opens at
 * SVQ_SPIN_MIN_NS), up to the ceiling.
 */
void svq_spin_woken(struct svq_spin *s);

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

/* A sched_yield() that returns later than this let another thread run:
 * alone on its CPU it takes well under a microsecond. */
#define SVQ_SPIN_HANDOFF_NS	2000ull

/* After a yield let another thread run, this many yields that come
 * straight back before the CPU counts as the spinning thread's own. */
#define SVQ_SPIN_SHARED_YIELDS	64u

/*
 * When a spin with nothing to do next gives its CPU away (sched_yield()),
 * the next time twice as far off, so that a long wait alone on its CPU
 * costs a few system calls, not one every few microseconds. A polling
 * thread that shares its CPU with the thread it waits for (a relay or a
 * proxy beside the guest's vCPU) sees its yields let that thread run: then
 * it yields at the first pass with nothing to do after progress, and at
 * once again after a yield that let another thread run, so that the thread
 * it waits for runs as soon as it can instead of waiting out the pause.
 */
struct svq_spin_yield {
	uint64_t at;		/* svq_spin_now() of the next sched_yield() */
	uint64_t gap;		/* from the last one */
};

/* One spin, from svq_spin_round_begin() to the svq_spin_round_pass() that
 * ends it. */
struct svq_spin_round {
	uint64_t now;		/* svq_spin_now() at the last pass */
	uint64_t idle_since;	/* the last progress, or the start */
	uint64_t window;	/* this spin's: the window, or for a probe
				 * the ceiling */
	struct svq_spin_yield yield;
	bool yielded;		/* the last pass gave the CPU away */
	bool probe;		/* a probe that has seen no progress yet */
};

/* A spin begins: @s's window (or the ceiling, for a probe) runs from now. */
void svq_spin_round_begin(struct svq_spin *s, struct svq_spin_round *r);

/*
 * svq_spin_round_pass() - a pass of the spin polled the rings: @progress,
 * whether it did something; @in_flight, whether a peer still owes
 * something. Relaxes or yields after a pass with nothing to do (r->yielded
 * says which), notes in @s when the window ran out. Progress in a probe
 * opens @s's window (SVQ_SPIN_PROBE_EVERY).
 * Return: whether to go on spinning.
 */
bool svq_spin_round_pass(struct svq_spin *s, struct svq_spin_round *r,
			 bool progress, bool in_flight);

#endif
