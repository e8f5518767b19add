/* minikv meta: the leader's placement loop. After a chunk server's
 * heartbeat, at most once per heartbeat period, the leader reads the map
 * and the registered nodes, runs placement (place.h) with what it knows of
 * the nodes' liveness, and proposes what changed (VSHARD_SET), one
 * proposal at a time. On the service's loop. */
#ifndef MKV_META_PLACER_H
#define MKV_META_PLACER_H
#include "meta/node.h"
#include "meta/nodes.h"

struct mkv_placer;
/* replicas: the replication factor to aim at (0: 3). */
struct mkv_placer *mkv_placer_new(struct mkv_nodes *nodes, unsigned replicas);
/* After a proposal's callback (the node answers them all before it stops). */
void mkv_placer_free(struct mkv_placer *p);
void mkv_placer_tick(struct mkv_placer *p, struct mkv_node *node);
#endif
