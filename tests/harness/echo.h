/* SPDX-License-Identifier: MIT */
/*
 * The "echo-hash" device both sides of the isolation harness agree on.
 *
 * For each chain the device reads every readable byte. The first 16 of them
 * (zero-padded if there are fewer) are a header:
 *
 *	u64 tag, u32 bytes_to_write, u32 seed	(little-endian)
 *
 * It hashes all readable bytes (echo_hash_*: FNV-1a 64 over little-endian
 * 8-byte words, the last one zero-padded, then the byte count), writes
 * echo_write_len() bytes of the pattern keyed by (seed, tag, hash) into the
 * writable segments, and reports that many bytes as the used length. A chain
 * with fewer than 16 readable bytes has no bytes_to_write: the device fills
 * every writable byte.
 *
 * Byte @off of the pattern depends only on the key and @off, so a writer and
 * a checker agree however the stream is cut into segments.
 */
#ifndef SVQ_HARNESS_ECHO_H
#define SVQ_HARNESS_ECHO_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ECHO_HDR_SIZE	16
#define FNV64_BASIS	0xcbf29ce484222325ull
#define FNV64_PRIME	0x100000001b3ull

struct echo_hdr {
	uint64_t tag;
	uint32_t bytes_to_write;
	uint32_t seed;
};

/* Streaming hash over a byte stream cut into arbitrary pieces. */
struct echo_hash {
	uint64_t h;
	uint64_t total;
	uint8_t part[8];	/* bytes of an unfinished word */
	unsigned int npart;
};

static inline void echo_hash_init(struct echo_hash *s)
{
	s->h = FNV64_BASIS;
	s->total = 0;
	s->npart = 0;
}

static inline void echo_hash_word(struct echo_hash *s, const uint8_t *p)
{
	uint64_t w;

	memcpy(&w, p, 8);
	s->h ^= le64toh(w);
	s->h *= FNV64_PRIME;
}

static inline void echo_hash_update(struct echo_hash *s, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	s->total += len;
	while (s->npart && len) {
		s->part[s->npart++] = *p++;
		len--;
		if (s->npart == 8) {
			echo_hash_word(s, s->part);
			s->npart = 0;
		}
	}
	for (; len >= 8; p += 8, len -= 8)
		echo_hash_word(s, p);
	memcpy(s->part + s->npart, p, len);
	s->npart += len;
}

static inline uint64_t echo_hash_final(struct echo_hash *s)
{
	uint64_t h;

	if (s->npart) {
		memset(s->part + s->npart, 0, 8 - s->npart);
		echo_hash_word(s, s->part);
		s->npart = 0;
	}
	h = s->h ^ s->total;
	return h * FNV64_PRIME;
}

/* Parse a header from the first min(16, @n) readable bytes in @b. */
static inline struct echo_hdr echo_parse_hdr(const uint8_t *b, size_t n)
{
	uint8_t raw[ECHO_HDR_SIZE] = { 0 };
	struct echo_hdr h;
	uint64_t tag;
	uint32_t w, seed;

	memcpy(raw, b, n < ECHO_HDR_SIZE ? n : ECHO_HDR_SIZE);
	memcpy(&tag, raw, 8);
	memcpy(&w, raw + 8, 4);
	memcpy(&seed, raw + 12, 4);
	h.tag = le64toh(tag);
	h.bytes_to_write = le32toh(w);
	h.seed = le32toh(seed);
	return h;
}

static inline void echo_put_hdr(uint8_t *b, const struct echo_hdr *h)
{
	uint64_t tag = htole64(h->tag);
	uint32_t w = htole32(h->bytes_to_write), seed = htole32(h->seed);

	memcpy(b, &tag, 8);
	memcpy(b + 8, &w, 4);
	memcpy(b + 12, &seed, 4);
}

/* Bytes the device writes (and reports) for a chain. */
static inline uint32_t echo_write_len(const struct echo_hdr *h, uint32_t out_bytes,
				      uint32_t in_bytes)
{
	uint32_t want = out_bytes >= ECHO_HDR_SIZE ? h->bytes_to_write : UINT32_MAX;

	return want < in_bytes ? want : in_bytes;
}

static inline uint64_t echo_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t echo_key(const struct echo_hdr *h, uint64_t hash)
{
	return echo_mix(h->tag ^ echo_mix(hash ^ ((uint64_t)h->seed << 32 | h->seed)));
}

static inline uint64_t echo_word(uint64_t key, uint64_t i)
{
	return echo_mix(key + i * 0x9e3779b97f4a7c15ull);
}

/* Write pattern bytes [@off, @off + @len) of @key to @dst. */
static inline void echo_fill(uint64_t key, uint64_t off, void *dst, size_t len)
{
	uint8_t *d = dst;
	uint64_t w;

	while (len && (off & 7)) {
		*d++ = (uint8_t)(echo_word(key, off >> 3) >> ((off & 7) * 8));
		off++;
		len--;
	}
	for (; len >= 8; d += 8, off += 8, len -= 8) {
		w = htole64(echo_word(key, off >> 3));
		memcpy(d, &w, 8);
	}
	if (len) {
		w = htole64(echo_word(key, off >> 3));
		memcpy(d, &w, len);
	}
}

/*
 * Compare [@off, @off + @len) of the pattern with @src.
 * Return: the index in @src of the first differing byte, or -1.
 */
static inline ptrdiff_t echo_check(uint64_t key, uint64_t off, const void *src,
				   size_t len)
{
	const uint8_t *s = src;
	uint8_t buf[4096];
	size_t done = 0, n, i;

	while (done < len) {
		n = len - done < sizeof(buf) ? len - done : sizeof(buf);
		echo_fill(key, off + done, buf, n);
		if (memcmp(buf, s + done, n)) {
			for (i = 0; i < n; i++)
				if (buf[i] != s[done + i])
					return (ptrdiff_t)(done + i);
		}
		done += n;
	}
	return -1;
}

#endif /* SVQ_HARNESS_ECHO_H */
