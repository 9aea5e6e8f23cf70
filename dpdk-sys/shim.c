/* fopencookie and open_memstream (ag_log_stream, ag_log_types). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <rte_ethdev.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_prefetch.h>
#include <fcntl.h>
#include <unistd.h>
#include "shim.h"

uint16_t ag_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_rx_burst(port, queue, pkts, n); }
uint16_t ag_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_tx_burst(port, queue, pkts, n); }
struct rte_mbuf *ag_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }
int ag_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **pkts, unsigned n)
{ return rte_pktmbuf_alloc_bulk(mp, pkts, n); }
void ag_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
char *ag_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }
char *ag_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
char *ag_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }
int ag_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
uint16_t ag_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t ag_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
void ag_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }
unsigned ag_mempool_avail_count(const struct rte_mempool *mp) { return rte_mempool_avail_count(mp); }
unsigned ag_lcore_id(void) { return rte_lcore_id(); }
uint64_t ag_rdtsc(void) { return rte_rdtsc(); }
uint64_t ag_tsc_hz(void) { return rte_get_tsc_hz(); }
int ag_errno(void) { return rte_errno; }
void ag_prefetch0(const void *p) { rte_prefetch0(p); }
uint64_t ag_rss_hf_ip_l4(void) { return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP; }

int ag_lock_holder(const char *path)
{
	struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* Only asked after the EAL failed, so this process holds no lock on the file that
	 * closing it would drop. */
	int rc = fcntl(fd, F_GETLK, &l);
	close(fd);
	if (rc < 0)
		return -1;
	return l.l_type == F_UNLCK ? 0 : (int)l.l_pid;
}

#include <rte_version.h>
const char *ag_version(void) { return rte_version(); }

#include <rte_log.h>

static ag_log_write_fn ag_log_sink;

/* glibc calls this with the text of one rte_log call (or a piece of a long one), on the thread
 * that logged: rte_vlog set that thread's level and type just before. Always "written": a
 * short count would make stdio retry, and an error would stop the stream for good. */
static ssize_t ag_log_cookie_write(void *cookie, const char *buf, size_t size)
{
	ag_log_write_fn sink = __atomic_load_n(&ag_log_sink, __ATOMIC_ACQUIRE);

	(void)cookie;
	if (sink != NULL)
		sink(rte_log_cur_msg_loglevel(), rte_log_cur_msg_logtype(), rte_gettid(), buf, size);
	return (ssize_t)size;
}

FILE *ag_log_stream(ag_log_write_fn sink)
{
	cookie_io_functions_t io = { .write = ag_log_cookie_write };
	FILE *f;

	/* Published before the stream exists: a thread that finds the stream finds the sink. */
	__atomic_store_n(&ag_log_sink, sink, __ATOMIC_RELEASE);
	f = fopencookie(NULL, "w", io);
	if (f == NULL)
		return NULL;
	/* Unbuffered: each rte_log call reaches the write function at once (vfprintf formats it
	 * into a helper buffer first, so in one call when under BUFSIZ), not mixed into another
	 * thread's in a shared buffer. */
	setvbuf(f, NULL, _IONBF, 0);
	return f;
}

char *ag_log_types(size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (f == NULL)
		return NULL;
	rte_log_dump(f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

void ag_free(void *p) { free(p); }
