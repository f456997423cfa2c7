/* SPDX-License-Identifier: MIT */
/*
 * Replayable randomness for tests: splitmix64, seeded from the test's seed
 * and a per-stream tag so streams stay independent and a printed seed
 * replays every one of them.
 */
#ifndef MOCK_RNG_H
#define MOCK_RNG_H

#include <stdbool.h>
#include <stdint.h>

struct rng {
	uint64_t s;
};

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline void rng_seed(struct rng *r, uint64_t seed, uint64_t tag)
{
	r->s = seed ^ (tag * 0xd1342543de82ef95ull);
	rng_next(r);
}

/* Uniform in [0, n), n >= 1. */
static inline uint32_t rng_below(struct rng *r, uint32_t n)
{
	return (uint32_t)(((rng_next(r) >> 32) * n) >> 32);
}

static inline uint32_t rng_range(struct rng *r, uint32_t lo, uint32_t hi)
{
	return lo + rng_below(r, hi - lo + 1);
}

static inline bool rng_chance(struct rng *r, uint32_t num, uint32_t den)
{
	return rng_below(r, den) < num;
}

#endif /* MOCK_RNG_H */
