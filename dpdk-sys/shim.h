/* Out-of-line copies of DPDK's static inline fast-path functions, which bindgen cannot see.
 * Each is a one-line forward; the names keep DPDK's with an `ag_` prefix. */
#ifndef ANYGATE_SHIM_H
#define ANYGATE_SHIM_H
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

uint16_t ag_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t ag_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *ag_pktmbuf_alloc(struct rte_mempool *mp);
int ag_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **pkts, unsigned n);
void ag_pktmbuf_free(struct rte_mbuf *m);
char *ag_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *ag_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *ag_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int ag_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t ag_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t ag_pktmbuf_tailroom(const struct rte_mbuf *m);
void ag_pktmbuf_reset(struct rte_mbuf *m);
unsigned ag_mempool_avail_count(const struct rte_mempool *mp);
unsigned ag_lcore_id(void);
uint64_t ag_rdtsc(void);
uint64_t ag_tsc_hz(void);
int ag_errno(void);
void ag_prefetch0(const void *p);
/* RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP: function-like macros bindgen cannot evaluate. */
uint64_t ag_rss_hf_ip_l4(void);
/* Not DPDK's: the pid holding a write lock on `path` (as a primary process holds its runtime
 * directory's `config`), 0 when none does, -1 when the file cannot be read. In C because
 * struct flock is the platform's. */
int ag_lock_holder(const char *path);

/* rte_version() is static inline in some DPDK releases: the running library's version string. */
const char *ag_version(void);

/* Not DPDK's: DPDK's log as calls of `sink(level, logtype, tid, text, len)`. The stream
 * (for rte_openlog_stream) is unbuffered, so each rte_log call's text arrives at once, on the
 * thread that logged (`tid`, rte_gettid), with the level and type of that call
 * (rte_log_cur_msg_*). `sink` is kept for the process. NULL when glibc cannot make the
 * stream. */
typedef void (*ag_log_write_fn)(int level, int logtype, int tid, const char *text, size_t len);
FILE *ag_log_stream(ag_log_write_fn sink);
/* rte_log_dump's text ("id N: NAME, level is L" lines, the registered log types), malloc'd
 * (free it with ag_free), its length in *len; NULL on failure. */
char *ag_log_types(size_t *len);
void ag_free(void *p);
#endif
