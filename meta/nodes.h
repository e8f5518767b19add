/* minikv meta: the chunk servers as the leader knows them: registered
 * ones (Raft state, NODE_LIST) joined with the heartbeats this member has
 * heard while leading, for META_STATUS. On the service's loop. */
#ifndef MKV_META_NODES_H
#define MKV_META_NODES_H
#include "minikv/buf.h"
#include "minikv/wire.h"

struct mkv_nodes;
/* interval_ms: the heartbeat period asked of chunk servers (0: 2 s); a
 * node missing three is DOWN, one silent for dead_ms (0: 60 s) DEAD. */
struct mkv_nodes *mkv_nodes_new(unsigned interval_ms, unsigned dead_ms);
void mkv_nodes_free(struct mkv_nodes *t);
unsigned mkv_nodes_interval_ms(const struct mkv_nodes *t);
/* Records a heartbeat; term: the term this member leads (the table starts
 * over when it changes). */
int mkv_nodes_heard(struct mkv_nodes *t, uint64_t term, const struct mkv_node_heartbeat_req *hb);
/* A node's state (MKV_NODE_*) as the leader of term knows it (term 0:
 * UNKNOWN). */
uint32_t mkv_nodes_state(struct mkv_nodes *t, uint64_t term, uint64_t id);
/* chunk_server_info records into out (replacing its content): every
 * registered node (node_rec records), with its share of the vshards
 * (vshard_rec records), with its state and figures when
 * leading term (else, term 0, UNKNOWN), then the addresses of static_list
 * ("h:p,...") that are not registered, as UP. */
int mkv_nodes_info(struct mkv_nodes *t, struct mkv_slice registered, struct mkv_slice vshards,
                   uint64_t term, const char *static_list, struct mkv_buf *out);
/* How many of the vshards (vshard_rec records) have a filling replica or
 * fewer than replicas. */
uint32_t mkv_vshards_degraded(struct mkv_slice vshards, uint32_t replicas);
#endif
