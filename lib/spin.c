/* SPDX-License-Identifier: MIT */
/* The adaptive spin window: see spin.h. */
#include <sched.h>
#include <time.h>

#include "spin.h"

uint64_t svq_spin_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void svq_spin_init(struct svq_spin *s, uint64_t max_ns)
{
	*s = (struct svq_spin){ .max_ns = max_ns, .cur_ns = max_ns };
}

bool svq_spin_should(struct svq_spin *s, bool in_flight)
{
	s->probe = false;
	if (!s->max_ns || !in_flight) {
		s->idle_at = 0;
		return false;
	}
	if (s->cur_ns) {
		s->waits = 0;
		return true;
	}
	if (++s->waits >= SVQ_SPIN_PROBE_EVERY) {
		s->waits = 0;
		s->probe = true;
		s->probes++;
		return true;
	}
	s->idle_at = svq_spin_now();	/* would a spin have caught the next? */
	return false;
}

void svq_spin_woken(struct svq_spin *s)
{
	uint64_t idle;

	if (!s->idle_at)
		return;
	idle = svq_spin_now() - s->idle_at;
	s->idle_at = 0;
	if (idle > s->max_ns) {
		if (s->cur_ns) {
			s->cur_ns /= 2;
			if (s->cur_ns < SVQ_SPIN_MIN_NS)
				s->cur_ns = 0;
			s->shrinks++;
		}
	} else if (s->cur_ns < s->max_ns) {
		s->cur_ns = s->cur_ns ? 2 * s->cur_ns : SVQ_SPIN_MIN_NS;
		if (s->cur_ns > s->max_ns)
			s->cur_ns = s->max_ns;
		s->grows++;
	}
}

/* The spin made progress at @now (or begins): a CPU shared with another
 * thread goes to it at the next pass with nothing to do. */
static void svq_spin_busy(const struct svq_spin *s, struct svq_spin_yield *y,
			  uint64_t now)
{
	y->gap = s->shared ? 0 : SVQ_SPIN_YIELD_NS;
	y->at = now + y->gap;
}

/* A pass with nothing to do at @now: pause, or yield when @y says so.
 * Return: whether it yielded. */
static bool svq_spin_relax(struct svq_spin *s, struct svq_spin_yield *y,
			   uint64_t now)
{
	uint64_t back;

	if (now < y->at) {
		svq_cpu_relax();
		return false;
	}
	sched_yield();
	back = svq_spin_now();
	if (back - now >= SVQ_SPIN_HANDOFF_NS) {
		s->shared = SVQ_SPIN_SHARED_YIELDS;
		s->handoffs++;
		y->gap = 0;
	} else {
		if (s->shared)
			s->shared--;
		y->gap = y->gap ? 2 * y->gap : SVQ_SPIN_YIELD_NS;
	}
	y->at = back + y->gap;
	return true;
}

void svq_spin_round_begin(struct svq_spin *s, struct svq_spin_round *r)
{
	r->now = r->idle_since = svq_spin_now();
	r->window = s->probe ? s->max_ns : s->cur_ns;
	r->probe = s->probe;
	s->probe = false;
	r->yielded = false;
	svq_spin_busy(s, &r->yield, r->now);
	s->idle_at = 0;
}

bool svq_spin_round_pass(struct svq_spin *s, struct svq_spin_round *r,
			 bool progress, bool in_flight)
{
	r->yielded = false;
	if (!progress && !in_flight)
		return false;
	r->now = svq_spin_now();
	if (progress) {
		if (r->probe) {
			/* Wide enough for twice the wait this probe saw. */
			uint64_t wait = r->now - r->idle_since;
			uint64_t w = SVQ_SPIN_MIN_NS;

			while (w < 2 * wait && w < s->max_ns)
				w *= 2;
			if (w > s->max_ns)
				w = s->max_ns;
			r->probe = false;
			if (w > s->cur_ns) {
				s->cur_ns = w;
				s->reopened++;
			}
		}
		r->idle_since = r->now;
		svq_spin_busy(s, &r->yield, r->now);
	} else if (r->now - r->idle_since >= r->window) {
		/* The next event says whether a wider window would have
		 * caught it. */
		s->idle_at = r->idle_since;
		return false;
	} else {
		r->yielded = svq_spin_relax(s, &r->yield, r->now);
	}
	return true;
}
