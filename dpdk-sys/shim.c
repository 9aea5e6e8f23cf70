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
