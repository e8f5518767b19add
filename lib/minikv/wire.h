/* minikv: the wire protocol, in one place.
 *
 * Every process talks to every other over TCP with length-prefixed binary
 * frames. The same message encodings are used for Raft commands (a meta
 * request that changes state is put in the Raft log as it came off the wire,
 * wrapped in an envelope) so that there is one codec, one set of bounds
 * checks and one fuzz target for all of it.
 *
 * Frame (all integers little-endian):
 *
 *   offset size field
 *   0      2    magic     0x4B4D ("MK" on the wire)
 *   2      1    version   MKV_WIRE_VERSION
 *   3      1    flags     MKV_FRAME_REPLY | MKV_FRAME_MORE | MKV_FRAME_SESSION
 *   4      2    type      message type (below)
 *   6      2    reserved  0
 *   8      4    status    replies: 0 or a negative minikv/errno code (err.h)
 *   12     4    length    payload bytes that follow the header
 *   16     8    req_id    chosen by the requester, echoed in the reply
 *   24     4    crc       CRC32C of bytes 0..23 and of the payload
 *   28     ...  payload
 *
 * A receiver checks magic, version and length (<= MKV_FRAME_MAX) before it
 * allocates or reads the payload, and the CRC before it decodes it. A bad
 * frame closes the connection (there is no way to resynchronise).
 *
 * Payload: the fields of the message, in the order listed below, with no
 * padding:
 *   U8/U16/U32/U64/I64  fixed-size little-endian integers
 *   STR                 u16 length + bytes (no NUL byte allowed inside)
 *   BLOB                u32 length + bytes
 * A field's third value is its bound: the longest STR/BLOB accepted (0 for
 * integers). Decoders reject a field over its bound and a payload that ends
 * before the last field. Bytes after the last known field are ignored, so a
 * newer sender may append fields.
 *
 * Lists travel as a BLOB holding records packed back to back, each encoded
 * with a record layout (MKV_RECORDS below) exactly like a payload.
 *
 * A reply with status < 0 carries an mkv_error_rep payload (a message and,
 * for MKV_ENOTLEADER, the leader's address) instead of the normal reply.
 */
#ifndef MKV_WIRE_H
#define MKV_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "common.h"

#define MKV_WIRE_MAGIC 0x4B4D
#define MKV_WIRE_VERSION 1
#define MKV_FRAME_HDR_SIZE 28
/* Largest payload: a data frame of MKV_DATA_MAX plus room for its fields. */
#define MKV_DATA_MAX (4u << 20)
#define MKV_FRAME_MAX (MKV_DATA_MAX + 65536u)

#define MKV_FRAME_REPLY 0x01
#define MKV_FRAME_MORE 0x02
/* The payload starts with a 16-byte session prefix (u64 client_id, u64
 * seq) before the message fields. Clients set it on requests marked [raft]
 * so that a retry after an unknown outcome (leader lost, timeout) applies
 * once: the state machine remembers the last seq per client_id. */
#define MKV_FRAME_SESSION 0x04
#define MKV_SESSION_PREFIX 16
/* On a [raft] request: the sender takes the reply as soon as the leader has
 * applied the command, before it is durable (see "Early replies" in
 * docs/design.md). What the reply announces is visible to every reader at
 * once; it is durable once a later META_SYNC (or a request sent without
 * this flag) has been answered. The FUSE mount uses it: its durability
 * point is fsync, as on a local file system. A leader that cannot apply
 * early (more than one voter, a snapshot being copied) replies after the
 * commit, as without the flag. */
#define MKV_FRAME_EARLY 0x08

/* Sizes that shape data layout. */
#define MKV_BLOCK_SIZE (64u * 1024u) /* CRC32C unit on chunk servers */
#define MKV_CHUNK_SIZE (64ull << 20) /* largest extent a chunk holds */
#define MKV_VSHARDS 256

/* Bounds on names. */
#define MKV_NAME_MAX 255 /* one path component */
#define MKV_KEY_MAX 1024 /* S3 key, bytes */
#define MKV_BUCKET_MAX 63
#define MKV_ETAG_MAX 80
#define MKV_ATTR_MAX 8192     /* user metadata + stored headers, in total */
#define MKV_LIST_MAX 1000     /* entries per listing reply */
#define MKV_EXTENTS_MAX 65536 /* extents per object */
#define MKV_MULTI_MAX 1000    /* keys per multi-delete, parts per complete */
#define MKV_PARTS_MAX 10000   /* highest multipart part number */
#define MKV_SECRET_MAX 512
#define MKV_XATTR_MAX (64u * 1024u) /* one extended attribute value */
/* A file that loses its last link stays as an orphan (readable through
 * descriptors still open) when it is in the keep list of the unlink or
 * rename, or the caller asked with MKV_UNLINK_KEEP. */
#define MKV_KEEP_MAX 1024
/* Largest object stored inline in its inode (data in the metadata record,
 * no chunks): the hard bound of the protocol; what is actually inlined is
 * each writer's choice (gateway --inline-max). */
#define MKV_INLINE_MAX (64u * 1024u)

struct mkv_frame_hdr
{
    uint16_t magic;
    uint8_t version;
    uint8_t flags;
    uint16_t type;
    int32_t status;
    uint32_t length;
    uint64_t req_id;
    uint32_t crc;
};

/* Encodes hdr (its crc is computed here over the header and payload) into
 * out[MKV_FRAME_HDR_SIZE]. */
MKV_API void mkv_frame_hdr_encode(struct mkv_frame_hdr *hdr, const void *payload, uint8_t *out);
/* Decodes and checks magic, version and length. The CRC is checked with
 * mkv_frame_check once the payload is in. Returns 0 or -EPROTO. */
MKV_API int mkv_frame_hdr_decode(const uint8_t *in, struct mkv_frame_hdr *hdr);
/* 0 when hdr->crc matches the header bytes and payload, else -EBADMSG. */
MKV_API int mkv_frame_check(const uint8_t *hdr_bytes, const struct mkv_frame_hdr *hdr,
                            const void *payload);

/* Field types of the codec. */
enum mkv_ftype {
    MKV_F_U8 = 1,
    MKV_F_U16,
    MKV_F_U32,
    MKV_F_U64,
    MKV_F_I64,
    MKV_F_STR,
    MKV_F_BLOB,
};

struct mkv_field
{
    uint8_t type;
    uint16_t offset;
    uint32_t max;
    const char *name;
};

struct mkv_msgdesc
{
    uint16_t type;
    const char *name;
    const struct mkv_field *fields;
    unsigned nfields;
    size_t size; /* sizeof the C struct */
};

/* C types of the fields. STR and BLOB are slices: after decoding they point
 * into the decoded buffer and are valid as long as it is. */
#define MKV_CTYPE_U8 uint8_t
#define MKV_CTYPE_U16 uint16_t
#define MKV_CTYPE_U32 uint32_t
#define MKV_CTYPE_U64 uint64_t
#define MKV_CTYPE_I64 int64_t
#define MKV_CTYPE_STR struct mkv_slice
#define MKV_CTYPE_BLOB struct mkv_slice

/* ------------------------------------------------------------------------
 * Message catalogue. Each entry: NAME, type code, sender -> receiver.
 * Replies use the request's type with MKV_FRAME_REPLY set.
 * Requests marked [raft] change state: the meta leader appends them to the
 * Raft log (in an mkv_raft_cmd envelope) and replies once applied.
 * ------------------------------------------------------------------------ */

/* Common. */
#define MKV_FIELDS_error_rep(F, s) \
    F(s, STR, message, 1024)       \
    F(s, STR, leader, 256)
#define MKV_FIELDS_ping_req(F, s) F(s, I64, sent_ns, 0)
#define MKV_FIELDS_ping_rep(F, s) \
    F(s, I64, sent_ns, 0)         \
    F(s, I64, now_ns, 0)          \
    F(s, STR, node, 256)

/* Authentication (minikv/auth.h), first on a connection to a service that
 * has a cluster key; anything else before it is refused with -EACCES.
 * Metadata service: AUTH_HELLO, AUTH, then TOKEN_GET for chunk servers.
 * Chunk service: AUTH_TOKEN. */
#define MKV_FIELDS_auth_hello_req(F, s) F(s, U32, version, 0) /* 1 */
#define MKV_FIELDS_auth_hello_rep(F, s) F(s, BLOB, nonce, 32)
#define MKV_FIELDS_auth_req(F, s) \
    F(s, STR, access_key, 128)    \
    F(s, BLOB, nonce, 32)         \
    F(s, BLOB, mac, 32)
#define MKV_FIELDS_auth_rep(F, s) F(s, U32, flags, 0) /* MKV_KEYF_* of the key */
#define MKV_FIELDS_token_get_req(F, s) F(s, U32, flags, 0)
#define MKV_FIELDS_token_get_rep(F, s) \
    F(s, STR, access_key, 128)         \
    F(s, U64, expiry_ns, 0)            \
    F(s, BLOB, token, 32)
#define MKV_FIELDS_auth_token_req(F, s) \
    F(s, STR, access_key, 128)          \
    F(s, U64, expiry_ns, 0)             \
    F(s, BLOB, token, 32)
#define MKV_FIELDS_auth_token_rep(F, s) F(s, U32, flags, 0)

/* Chunk service: gateway/FUSE/meta -> chunk server. */
#define MKV_FIELDS_chunk_write_req(F, s)                                    \
    F(s, U64, chunk_id, 0)                                                  \
    F(s, U32, version, 0)                                                   \
    F(s, U32, base_version, 0)                                              \
    F(s, U64, offset, 0)                                                    \
    F(s, U32, flags, 0)                                                     \
    F(s, U64, vepoch, 0) /* the writer's map epoch of the chunk's vshard: a \
                          * server that has seen a newer one for it (a fill \
                          * started) refuses with MKV_ESTALE */             \
    F(s, BLOB, data, MKV_DATA_MAX)
#define MKV_FIELDS_chunk_write_rep(F, s) \
    F(s, U64, lsn, 0)                    \
    F(s, U32, length, 0)
#define MKV_FIELDS_chunk_read_req(F, s) \
    F(s, U64, chunk_id, 0)              \
    F(s, U32, version, 0)               \
    F(s, U32, flags, 0)                 \
    F(s, U64, offset, 0)                \
    F(s, U32, length, 0)
#define MKV_FIELDS_chunk_read_rep(F, s) F(s, BLOB, data, MKV_DATA_MAX)
#define MKV_FIELDS_chunk_commit_req(F, s) \
    F(s, BLOB, ids, 16u * MKV_MULTI_MAX) /* chunk_ref records */
#define MKV_FIELDS_chunk_commit_rep(F, s) F(s, U32, count, 0)
#define MKV_FIELDS_chunk_delete_req(F, s) \
    F(s, BLOB, ids, 16u * MKV_MULTI_MAX) /* chunk_ref records */
#define MKV_FIELDS_chunk_delete_rep(F, s) F(s, U32, count, 0)
/* CHUNK_LIST: the versions a chunk server holds of a vshard's chunks, in
 * (chunk, version) order after chunk id `after`, up to max; first raises
 * the server's fence for the vshard to `fence` (kept on disk): from then on
 * it refuses writes made with an older map (chunk_write_req.vepoch), whose
 * writers then reload the map and reach the filling replica too. */
#define MKV_FIELDS_chunk_list_req(F, s) \
    F(s, U32, vshard, 0)                \
    F(s, U64, fence, 0)                 \
    F(s, U64, after, 0)                 \
    F(s, U32, max, 0)
#define MKV_FIELDS_chunk_list_rep(F, s)                   \
    F(s, BLOB, held, 28u * 4096) /* chunk_held records */ \
    F(s, U32, more, 0)           /* 1: more after the last listed */
#define MKV_FIELDS_chunk_held(F, s) \
    F(s, U64, chunk_id, 0)          \
    F(s, U32, version, 0)           \
    F(s, U64, size, 0)              \
    F(s, U32, committed, 0)
#define MKV_FIELDS_chunk_stat_req(F, s) F(s, U32, flags, 0)
#define MKV_FIELDS_chunk_stat_rep(F, s)                                          \
    F(s, U64, capacity, 0)                                                       \
    F(s, U64, free, 0)                                                           \
    F(s, U64, used, 0)                                                           \
    F(s, U64, live, 0)                                                           \
    F(s, U64, chunks, 0)                                                         \
    F(s, U64, lsn, 0)                                                            \
    F(s, U32, state, 0)                                                          \
    F(s, STR, io_backend, 32)                                                    \
    F(s, U64, fsyncs, 0)                                                         \
    F(s, U64, fsync_ns_total, 0)                                                 \
    F(s, U64, corrupt_blocks, 0)                                                 \
    F(s, U64, segments, 0)                                                       \
    F(s, BLOB, fsync_hist, 8u * 18u) /* u64 x MKV_HIST_BUCKETS, count, sum_ns */ \
    F(s, U64, fill_copied, 0)        /* versions copied by fills since start */  \
    F(s, U64, fill_bytes, 0)         /* their bytes */

/* Meta service: clients -> meta leader. */
#define MKV_FIELDS_meta_status_req(F, s) F(s, U32, flags, 0)
/* META_SYNC: answered once every command the leader has answered early
 * (MKV_FRAME_EARLY) is committed and durable. */
#define MKV_FIELDS_meta_sync_req(F, s) F(s, U32, flags, 0)
#define MKV_FIELDS_meta_sync_rep(F, s) F(s, U64, index, 0) /* last index now durable */
#define MKV_FIELDS_meta_status_rep(F, s)                                               \
    F(s, U64, id, 0)                                                                   \
    F(s, U8, role, 0) /* 0 unavailable, 1 follower, 2 candidate, 3 leader */           \
    F(s, U8, ready, 0)                                                                 \
    F(s, U64, term, 0)                                                                 \
    F(s, U64, commit_index, 0)                                                         \
    F(s, U64, applied_index, 0)                                                        \
    F(s, U64, last_index, 0)                                                           \
    F(s, U64, snapshot_index, 0)                                                       \
    F(s, U64, leader_id, 0)                                                            \
    F(s, STR, leader, 256)                                                             \
    F(s, STR, address, 256)                                                            \
    F(s, U32, voters, 0)                                                               \
    F(s, U64, buckets, 0)                                                              \
    F(s, U64, objects, 0)                                                              \
    F(s, U64, bytes, 0)                                                                \
    F(s, U64, uploads, 0)                                                              \
    F(s, U64, garbage, 0)                                                              \
    F(s, BLOB, chunk_servers, 65536) /* chunk_server_info records */                   \
    F(s, BLOB, members, 65536)       /* member_info records: the Raft configuration */ \
    F(s, U64, vshard_epoch, 0)       /* the vshard map's (0: none yet) */              \
    F(s, U32, replicas, 0)           /* the factor placement aims at */                \
    F(s, U32, vshards_degraded, 0)   /* vshards short of it or filling */
/* META_MEMBER: changes the metadata group (admin keys only), on the
 * leader. ADD makes the member at address (its meta client HOST:PORT; Raft
 * on PORT+1) a spare, lets it catch up from a snapshot and the log, then a
 * voter (or, with MKV_MEMBER_F_STANDBY, a standby: it replicates the log
 * but does not vote); the reply waits for the configuration change to
 * commit. REMOVE drops member id. TRANSFER
 * hands leadership to id (0: the most up-to-date voter); the reply waits
 * until this member has stepped down. */
#define MKV_FIELDS_meta_member_req(F, s)                      \
    F(s, U32, op, 0) /* MKV_MEMBER_ADD, _REMOVE, _TRANSFER */ \
    F(s, U64, id, 0)                                          \
    F(s, STR, address, 256) /* ADD only */                    \
    F(s, U32, flags, 0)     /* ADD only: MKV_MEMBER_F_* */
#define MKV_FIELDS_meta_member_rep(F, s) \
    F(s, U64, leader_id, 0)              \
    F(s, U32, voters, 0)
#define MKV_FIELDS_meta_alloc_req(F, s) /* [raft] */ \
    F(s, U32, count, 0)                              \
    F(s, U32, flags, 0) /* MKV_ALLOC_INODES: skip inode numbers instead */
#define MKV_FIELDS_meta_alloc_rep(F, s) \
    F(s, U64, first, 0)                 \
    F(s, U32, count, 0)
#define MKV_FIELDS_bucket_create_req(F, s) /* [raft] */ \
    F(s, STR, name, MKV_BUCKET_MAX)                     \
    F(s, U32, replicas, 0)                              \
    F(s, U32, flags, 0)
#define MKV_FIELDS_bucket_create_rep(F, s) F(s, I64, ctime, 0)
#define MKV_FIELDS_bucket_delete_req(F, s) F(s, STR, name, MKV_BUCKET_MAX) /* [raft] */
#define MKV_FIELDS_bucket_delete_rep(F, s) F(s, U32, flags, 0)
#define MKV_FIELDS_bucket_head_req(F, s) F(s, STR, name, MKV_BUCKET_MAX)
#define MKV_FIELDS_bucket_head_rep(F, s) \
    F(s, I64, ctime, 0)                  \
    F(s, U32, replicas, 0)               \
    F(s, U64, ino, 0)
#define MKV_FIELDS_bucket_list_req(F, s) F(s, U32, flags, 0)
#define MKV_FIELDS_bucket_list_rep(F, s) F(s, BLOB, buckets, 1u << 20) /* bucket_entry records */

/* Objects, addressed by bucket + key (the S3 front). */
#define MKV_FIELDS_obj_lookup_req(F, s) \
    F(s, STR, bucket, MKV_BUCKET_MAX)   \
    F(s, STR, key, MKV_KEY_MAX)         \
    F(s, U32, flags, 0)
#define MKV_FIELDS_obj_info(F, s)              \
    F(s, U64, ino, 0)                          \
    F(s, U8, type, 0)   /* MKV_T_* */          \
    F(s, U8, dflags, 0) /* MKV_DF_* */         \
    F(s, U32, mode, 0)                         \
    F(s, U32, uid, 0)                          \
    F(s, U32, gid, 0)                          \
    F(s, U32, nlink, 0)                        \
    F(s, U64, size, 0)                         \
    F(s, I64, atime, 0)                        \
    F(s, I64, mtime, 0)                        \
    F(s, I64, ctime, 0)                        \
    F(s, STR, etag, MKV_ETAG_MAX)              \
    F(s, STR, content_type, 256)               \
    F(s, BLOB, attrs, MKV_ATTR_MAX)            \
    F(s, BLOB, extents, 40u * MKV_EXTENTS_MAX) \
    F(s, STR, symlink, 4096)                   \
    F(s, U64, generation, 0)                   \
    F(s, BLOB, data, MKV_INLINE_MAX) /* inline data: extents empty, len == size */
#define MKV_FIELDS_obj_put_req(F, s) /* [raft] */   \
    F(s, STR, bucket, MKV_BUCKET_MAX)               \
    F(s, STR, key, MKV_KEY_MAX)                     \
    F(s, U32, flags, 0) /* MKV_PUT_* */             \
    F(s, STR, if_match, MKV_ETAG_MAX)               \
    F(s, U64, size, 0)                              \
    F(s, I64, mtime, 0) /* 0: the command's time */ \
    F(s, U32, mode, 0)                              \
    F(s, U32, uid, 0)                               \
    F(s, U32, gid, 0)                               \
    F(s, STR, etag, MKV_ETAG_MAX)                   \
    F(s, STR, content_type, 256)                    \
    F(s, BLOB, attrs, MKV_ATTR_MAX)                 \
    F(s, BLOB, extents, 40u * MKV_EXTENTS_MAX)      \
    F(s, BLOB, data, MKV_INLINE_MAX) /* inline data (then no extents, len == size) */
#define MKV_FIELDS_obj_put_rep(F, s) \
    F(s, U64, ino, 0)                \
    F(s, I64, mtime, 0)
#define MKV_FIELDS_obj_delete_req(F, s) /* [raft] */ \
    F(s, STR, bucket, MKV_BUCKET_MAX)                \
    F(s, STR, key, MKV_KEY_MAX)                      \
    F(s, U32, flags, 0)
#define MKV_FIELDS_obj_delete_rep(F, s) F(s, U32, existed, 0)
#define MKV_FIELDS_obj_delete_multi_req(F, s) /* [raft], all or nothing */ \
    F(s, STR, bucket, MKV_BUCKET_MAX)                                      \
    F(s, BLOB, keys, (MKV_KEY_MAX + 2u) * MKV_MULTI_MAX) /* key_entry records */
#define MKV_FIELDS_obj_delete_multi_rep(F, s) \
    F(s, BLOB, results, 8u * MKV_MULTI_MAX) /* status records, one per key */
/* Multi-key transactions: puts (inline data only) and deletes over any
 * buckets, applied all or nothing as one Raft command. */
#define MKV_TXN_BYTES_MAX (2u << 20) /* encoded operations per transaction */
#define MKV_FIELDS_txn_op(F, s)                                         \
    F(s, U8, kind, 0) /* MKV_TXN_PUT or MKV_TXN_DELETE */               \
    F(s, STR, bucket, MKV_BUCKET_MAX)                                   \
    F(s, STR, key, MKV_KEY_MAX)                                         \
    F(s, U32, flags, 0) /* MKV_PUT_IF_NONE_MATCH; MKV_TXN_MUST_EXIST */ \
    F(s, STR, if_match, MKV_ETAG_MAX)                                   \
    F(s, STR, etag, MKV_ETAG_MAX)                                       \
    F(s, STR, content_type, 256)                                        \
    F(s, BLOB, data, MKV_INLINE_MAX)
#define MKV_FIELDS_obj_txn_req(F, s)   /* [raft], all or nothing */ \
    F(s, BLOB, ops, MKV_TXN_BYTES_MAX) /* txn_op records */
#define MKV_FIELDS_obj_txn_rep(F, s)                                           \
    F(s, U32, failed, 0) /* 0: all applied; else 1 + the failing op's index */ \
    F(s, I64, status, 0) /* why it failed (nothing was applied) */
#define MKV_FIELDS_obj_list_req(F, s)   \
    F(s, STR, bucket, MKV_BUCKET_MAX)   \
    F(s, STR, prefix, MKV_KEY_MAX)      \
    F(s, STR, delimiter, 16)            \
    F(s, STR, start_after, MKV_KEY_MAX) \
    F(s, U32, max_keys, 0)              \
    F(s, U32, flags, 0)
#define MKV_FIELDS_obj_list_rep(F, s)                       \
    F(s, BLOB, entries, 2u << 20)  /* list_entry records */ \
    F(s, BLOB, prefixes, 2u << 20) /* key_entry records */  \
    F(s, U8, truncated, 0)                                  \
    F(s, STR, next, MKV_KEY_MAX)

/* Multipart uploads. */
#define MKV_FIELDS_mpu_create_req(F, s) /* [raft] */ \
    F(s, STR, bucket, MKV_BUCKET_MAX)                \
    F(s, STR, key, MKV_KEY_MAX)                      \
    F(s, STR, upload_id, 64)                         \
    F(s, STR, content_type, 256)                     \
    F(s, BLOB, attrs, MKV_ATTR_MAX)
#define MKV_FIELDS_mpu_create_rep(F, s) F(s, I64, initiated, 0)
#define MKV_FIELDS_mpu_part_req(F, s) /* [raft] */ \
    F(s, STR, upload_id, 64)                       \
    F(s, U32, part_no, 0)                          \
    F(s, U64, size, 0)                             \
    F(s, STR, etag, MKV_ETAG_MAX)                  \
    F(s, BLOB, attrs, MKV_ATTR_MAX)                \
    F(s, BLOB, extents, 40u * 1024u)
#define MKV_FIELDS_mpu_part_rep(F, s) F(s, I64, mtime, 0)
#define MKV_FIELDS_mpu_complete_req(F, s) /* [raft] */                            \
    F(s, STR, bucket, MKV_BUCKET_MAX)                                             \
    F(s, STR, key, MKV_KEY_MAX)                                                   \
    F(s, STR, upload_id, 64)                                                      \
    F(s, BLOB, parts, (MKV_ETAG_MAX + 8u) * MKV_PARTS_MAX) /* part_ref records */ \
    F(s, U32, flags, 0)
#define MKV_FIELDS_mpu_complete_rep(F, s) \
    F(s, STR, etag, MKV_ETAG_MAX)         \
    F(s, U64, size, 0)                    \
    F(s, U64, ino, 0)
#define MKV_FIELDS_mpu_abort_req(F, s) /* [raft] */ \
    F(s, STR, bucket, MKV_BUCKET_MAX)               \
    F(s, STR, key, MKV_KEY_MAX)                     \
    F(s, STR, upload_id, 64)
#define MKV_FIELDS_mpu_abort_rep(F, s) F(s, U32, flags, 0)
#define MKV_FIELDS_mpu_get_req(F, s) F(s, STR, upload_id, 64)
#define MKV_FIELDS_mpu_get_rep(F, s)  \
    F(s, STR, bucket, MKV_BUCKET_MAX) \
    F(s, STR, key, MKV_KEY_MAX)       \
    F(s, I64, initiated, 0)           \
    F(s, STR, content_type, 256)      \
    F(s, BLOB, attrs, MKV_ATTR_MAX)
#define MKV_FIELDS_mpu_list_parts_req(F, s) \
    F(s, STR, upload_id, 64)                \
    F(s, U32, marker, 0)                    \
    F(s, U32, max_parts, 0)
#define MKV_FIELDS_mpu_list_parts_rep(F, s)              \
    F(s, BLOB, parts, 1u << 20) /* part_entry records */ \
    F(s, U8, truncated, 0)                               \
    F(s, U32, next_marker, 0)
#define MKV_FIELDS_mpu_list_uploads_req(F, s) \
    F(s, STR, bucket, MKV_BUCKET_MAX)         \
    F(s, STR, prefix, MKV_KEY_MAX)            \
    F(s, STR, key_marker, MKV_KEY_MAX)        \
    F(s, STR, upload_id_marker, 64)           \
    F(s, U32, max_uploads, 0)
#define MKV_FIELDS_mpu_list_uploads_rep(F, s)                \
    F(s, BLOB, uploads, 2u << 20) /* upload_entry records */ \
    F(s, U8, truncated, 0)                                   \
    F(s, STR, next_key, MKV_KEY_MAX)                         \
    F(s, STR, next_upload_id, 64)

/* Garbage collection of chunk data and the two-phase-commit check. */
#define MKV_FIELDS_gc_list_req(F, s) \
    F(s, U32, max, 0)                \
    F(s, U64, node, 0) /* the asking chunk server: skips what it confirmed (0: none) */
#define MKV_FIELDS_gc_list_rep(F, s) F(s, BLOB, ids, 16u * MKV_MULTI_MAX) /* chunk_ref */
#define MKV_FIELDS_gc_done_req(F, s)                                      /* [raft] */ \
    F(s, BLOB, ids, 16u * MKV_MULTI_MAX) /* chunk_ref records deleted */               \
    F(s, U64, node, 0)                   /* who deleted them; 0: the only chunk server */
#define MKV_FIELDS_gc_done_rep(F, s) F(s, U32, count, 0)
#define MKV_FIELDS_refcheck_req(F, s) F(s, BLOB, ids, 16u * MKV_MULTI_MAX)  /* chunk_ref */
#define MKV_FIELDS_refcheck_rep(F, s) F(s, BLOB, referenced, MKV_MULTI_MAX) /* one byte per id */

/* Access keys. Secrets are sealed with the cluster key (AES-256-GCM) before
 * they are sent here; the meta service never sees them in the clear. */
#define MKV_FIELDS_key_put_req(F, s) /* [raft] */ \
    F(s, STR, access_key, 128)                    \
    F(s, BLOB, sealed_secret, MKV_SECRET_MAX)     \
    F(s, U32, flags, 0) /* MKV_KEYF_* */
#define MKV_FIELDS_key_put_rep(F, s) F(s, I64, created, 0)
#define MKV_FIELDS_key_get_req(F, s) F(s, STR, access_key, 128)
#define MKV_FIELDS_key_get_rep(F, s)          \
    F(s, BLOB, sealed_secret, MKV_SECRET_MAX) \
    F(s, U32, flags, 0)                       \
    F(s, I64, created, 0)
#define MKV_FIELDS_key_delete_req(F, s) F(s, STR, access_key, 128) /* [raft] */
#define MKV_FIELDS_key_delete_rep(F, s) F(s, U32, flags, 0)
#define MKV_FIELDS_key_list_req(F, s) F(s, U32, flags, 0)
#define MKV_FIELDS_key_list_rep(F, s) F(s, BLOB, keys, 1u << 20) /* key_info records */
/* Chunk servers known to the group (Raft state). NODE_REGISTER (cluster
 * principal): a chunk server with id 0 gets a new id, one with an id
 * updates its address and zone (an unknown id is refused: -ENOENT).
 * NODE_HEARTBEAT (not in the log: the leader keeps the last one per node in
 * memory) reports what a chunk server holds. NODE_LIST: the registered
 * nodes (node_rec records). */
#define MKV_FIELDS_node_register_req(F, s) /* [raft] */ \
    F(s, U64, id, 0)                                    \
    F(s, STR, address, 256)                             \
    F(s, STR, zone, 64)
#define MKV_FIELDS_node_register_rep(F, s) F(s, U64, id, 0)
#define MKV_FIELDS_node_heartbeat_req(F, s) \
    F(s, U64, id, 0)                        \
    F(s, U64, capacity, 0)                  \
    F(s, U64, free, 0)                      \
    F(s, U64, used, 0)                      \
    F(s, U64, chunks, 0)
#define MKV_FIELDS_node_heartbeat_rep(F, s)                \
    F(s, U32, interval_ms, 0)  /* when to send the next */ \
    F(s, U64, vshard_epoch, 0) /* the map's: a newer one is worth loading */
#define MKV_FIELDS_node_list_req(F, s) F(s, U32, flags, 0)
#define MKV_FIELDS_node_list_rep(F, s) F(s, BLOB, nodes, 1u << 20) /* node_rec records */
#define MKV_FIELDS_node_rec(F, s) \
    F(s, U64, id, 0)              \
    F(s, STR, address, 256)       \
    F(s, STR, zone, 64)           \
    F(s, I64, registered, 0)      \
    F(s, U32, flags, 0)          /* MKV_NODEF_* */
enum { MKV_NODEF_DRAIN = 0x01 }; /* minikvctl drain: its vshards move away */

/* The vshard map (Raft state): every chunk belongs to vshard
 * chunk_id % MKV_VSHARDS, and the map gives each vshard an ordered set of
 * chunk servers (node ids) that hold it. A replica still "filling" takes
 * every new write of the vshard but may lack older data: readers try it
 * last. VSHARD_SET (cluster principal; the leader proposes it itself)
 * replaces the records it carries if the map is still at epoch (else
 * MKV_ECONFLICT), and bumps the epoch. VSHARD_LIST: the whole map with the
 * registered nodes, so that a client can route by it. */
#define MKV_VSHARDS 256
#define MKV_REPLICAS_MAX 7
#define MKV_FIELDS_vshard_rec(F, s)                                                  \
    F(s, U32, vshard, 0)                                                             \
    F(s, U64, epoch, 0)                        /* the map's, when it last changed */ \
    F(s, BLOB, replicas, 8 * MKV_REPLICAS_MAX) /* node ids, LE64, in order */        \
    F(s, BLOB, filling, 8 * MKV_REPLICAS_MAX)  /* those of replicas still filling */
#define MKV_FIELDS_vshard_map(F, s) \
    F(s, U64, epoch, 0)             \
    F(s, U32, replicas, 0)              /* the replication factor placement aims at */
#define MKV_FIELDS_vshard_set_req(F, s) /* [raft] */                                \
    F(s, U64, epoch, 0)                 /* the map epoch this change starts from */ \
    F(s, U32, replicas, 0)              /* the factor it aims at */                 \
    F(s, BLOB, vshards, 1u << 20)       /* vshard_rec records (their epoch is set) */
#define MKV_FIELDS_vshard_set_rep(F, s) F(s, U64, epoch, 0)
#define MKV_FIELDS_vshard_list_req(F, s) F(s, U32, flags, 0) /* MKV_VSHARD_LIST_* */
/* VSHARD_MARK: replicas that missed a write (a client could not make it
 * durable there) go back to filling, so that reads avoid them until they
 * have caught up. Marks for a node no longer a replica are ignored. */
#define MKV_FIELDS_vshard_mark(F, s) \
    F(s, U32, vshard, 0)             \
    F(s, U64, node, 0)
#define MKV_FIELDS_vshard_mark_req(F, s)                    /* [raft] */ \
    F(s, BLOB, marks, 12u * MKV_VSHARDS * MKV_REPLICAS_MAX) /* vshard_mark records */
#define MKV_FIELDS_vshard_mark_rep(F, s) F(s, U64, epoch, 0)
/* VSHARD_FILLED (admin: chunk servers): node has copied everything vshard
 * held when its fill started at epoch; refused with MKV_ESTALE when the
 * vshard changed since (the fill starts over). */
#define MKV_FIELDS_vshard_filled_req(F, s) /* [raft] */ \
    F(s, U32, vshard, 0)                                \
    F(s, U64, node, 0)                                  \
    F(s, U64, epoch, 0)
#define MKV_FIELDS_vshard_filled_rep(F, s) F(s, U64, epoch, 0)
/* NODE_DRAIN (admin): mark chunk server id draining (undo: not any more);
 * placement moves its vshards to the others, copying first. */
#define MKV_FIELDS_node_drain_req(F, s) /* [raft] */ \
    F(s, U64, id, 0)                                 \
    F(s, U32, undo, 0)
#define MKV_FIELDS_node_drain_rep(F, s) F(s, U32, flags, 0) /* the node's MKV_NODEF_* now */
#define MKV_FIELDS_vshard_list_rep(F, s)                             \
    F(s, U64, epoch, 0) /* 0: no map yet */                          \
    F(s, U32, replicas, 0)                                           \
    F(s, BLOB, vshards, 1u << 20) /* vshard_rec records, in order */ \
    F(s, BLOB, nodes, 1u << 20)   /* node_rec records */

/* Inodes: the POSIX front (FUSE). A name is one path component; inode
 * numbers are those of obj_info, and replies that carry an inode are
 * obj_info records. MKV_INO_ATTR in flags leaves extents, inline data and
 * attrs out of them (what lookup and getattr need). Errors are -errno
 * values (ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, EXDEV, EPERM,
 * EINVAL, ENAMETOOLONG, ENODATA, ERANGE...). */
#define MKV_FIELDS_ino_lookup_req(F, s) \
    F(s, U64, parent, 0)                \
    F(s, STR, name, MKV_NAME_MAX)       \
    F(s, U32, flags, 0)
#define MKV_FIELDS_ino_getattr_req(F, s) \
    F(s, U64, ino, 0)                    \
    F(s, U32, flags, 0)
#define MKV_FIELDS_ino_setattr_req(F, s) /* [raft] */ \
    F(s, U64, ino, 0)                                 \
    F(s, U32, valid, 0) /* MKV_SET_* */               \
    F(s, U32, mode, 0)                                \
    F(s, U32, uid, 0)                                 \
    F(s, U32, gid, 0)                                 \
    F(s, U64, size, 0)                                \
    F(s, I64, atime, 0)                               \
    F(s, I64, mtime, 0)
#define MKV_FIELDS_ino_make_req(F, s) /* [raft] create, mkdir, symlink, mknod */ \
    F(s, U64, parent, 0)                                                         \
    F(s, STR, name, MKV_NAME_MAX)                                                \
    F(s, U8, type, 0)  /* MKV_T_* */                                             \
    F(s, U32, mode, 0) /* permission bits */                                     \
    F(s, U32, uid, 0)                                                            \
    F(s, U32, gid, 0)                                                            \
    F(s, U32, flags, 0)                                                          \
    F(s, STR, symlink, 4096)
#define MKV_FIELDS_ino_unlink_req(F, s) /* [raft] unlink, rmdir */ \
    F(s, U64, parent, 0)                                           \
    F(s, STR, name, MKV_NAME_MAX)                                  \
    F(s, U32, flags, 0)                 /* MKV_UNLINK_* */         \
    F(s, BLOB, keep, 8u * MKV_KEEP_MAX) /* u64 LE inodes open at the caller */
#define MKV_FIELDS_ino_unlink_rep(F, s)                                                            \
    F(s, U64, ino, 0)                                                                              \
    F(s, U32, nlink, 0)                 /* links left; 0 and MKV_UNLINK_KEEP: kept as an orphan */ \
    F(s, I64, now, 0)                   /* the command's time: the parent's new mtime and ctime */
#define MKV_FIELDS_ino_rename_req(F, s) /* [raft] */                                            \
    F(s, U64, parent, 0)                                                                        \
    F(s, STR, name, MKV_NAME_MAX)                                                               \
    F(s, U64, newparent, 0)                                                                     \
    F(s, STR, newname, MKV_NAME_MAX)                                                            \
    F(s, U32, flags, 0)                 /* MKV_RENAME_*, MKV_UNLINK_KEEP for a replaced file */ \
    F(s, BLOB, keep, 8u * MKV_KEEP_MAX) /* as for unlink */
#define MKV_FIELDS_ino_rename_rep(F, s)                                   \
    F(s, U64, ino, 0)                                                     \
    F(s, U64, replaced, 0) /* the inode newname named before (0: none) */ \
    F(s, U32, replaced_nlink, 0)                                          \
    F(s, I64, now, 0)                 /* the command's time: the parents' new mtime and ctime */
#define MKV_FIELDS_ino_link_req(F, s) /* [raft] */ \
    F(s, U64, ino, 0)                              \
    F(s, U64, newparent, 0)                        \
    F(s, STR, newname, MKV_NAME_MAX)
#define MKV_FIELDS_ino_readdir_req(F, s)                                   \
    F(s, U64, ino, 0)                                                      \
    F(s, U64, cookie, 0) /* the last entry's cookie (0: from the start) */ \
    F(s, U32, max, 0)                                                      \
    F(s, U32, flags, 0) /* MKV_INO_PLUS: with attributes */                \
    F(s, U64, until, 0) /* not 0: entries made later (a larger cookie) are \
                           left out: a listing ends even while entries     \
                           are renamed within the directory */
#define MKV_FIELDS_ino_readdir_rep(F, s)               \
    F(s, BLOB, entries, 1u << 20) /* dirent records */ \
    F(s, U8, eof, 0)                                   \
    F(s, U64, last, 0)                 /* from the start: the directory's largest cookie now */
#define MKV_FIELDS_ino_write_req(F, s) /* [raft] */                              \
    F(s, U64, ino, 0)                                                            \
    F(s, U64, size, 0)                 /* the size afterwards */                 \
    F(s, I64, mtime, 0)                /* 0: the command's time */               \
    F(s, U32, flags, 0)                /* MKV_WRITE_* */                         \
    F(s, BLOB, extents, 40u * 4096u)   /* new data, spliced over their ranges */ \
    F(s, BLOB, data, MKV_INLINE_MAX)   /* MKV_WRITE_INLINE: the whole content */ \
    F(s, STR, etag, MKV_ETAG_MAX)      /* "" when the writer could not compute it */
#define MKV_FIELDS_xattr_set_req(F, s) /* [raft] */ \
    F(s, U64, ino, 0)                               \
    F(s, STR, name, 255)                            \
    F(s, BLOB, value, MKV_XATTR_MAX)                \
    F(s, U32, flags, 0) /* MKV_XATTR_CREATE / MKV_XATTR_REPLACE */
#define MKV_FIELDS_xattr_get_req(F, s) \
    F(s, U64, ino, 0)                  \
    F(s, STR, name, 255)
#define MKV_FIELDS_xattr_get_rep(F, s) F(s, BLOB, value, MKV_XATTR_MAX)
#define MKV_FIELDS_xattr_list_req(F, s) F(s, U64, ino, 0)
#define MKV_FIELDS_xattr_list_rep(F, s) F(s, BLOB, names, 1u << 20) /* key_entry records */
#define MKV_FIELDS_xattr_remove_req(F, s)                           /* [raft] */ \
    F(s, U64, ino, 0)                                                            \
    F(s, STR, name, 255)
#define MKV_FIELDS_orphan_drop_req(F, s) F(s, U64, ino, 0) /* [raft] */
/* The MD5 ETag of a file whose content was written out of order, computed
 * by the writer afterwards: it applies only while the content is still
 * that generation. */
#define MKV_FIELDS_ino_etag_req(F, s) /* [raft] */ \
    F(s, U64, ino, 0)                              \
    F(s, U64, generation, 0)                       \
    F(s, STR, etag, MKV_ETAG_MAX)
#define MKV_FIELDS_ino_etag_rep(F, s) F(s, U32, applied, 0) /* 0: the content moved on */
/* Advisory locks: fcntl record locks and flock, kept in the memory of the
 * metadata leader, held by (the connection that asked, owner) and
 * released when that connection closes. Not Raft commands: a new leader
 * starts with no locks. A lock that conflicts is refused with -EAGAIN
 * (the client waits and asks again for F_SETLKW). */
#define MKV_FIELDS_lock_req(F, s)                                                                \
    F(s, U64, ino, 0)                                                                            \
    F(s, U64, owner, 0) /* the client's lock owner (fcntl: per process; flock: per open file) */ \
    F(s, U64, start, 0)                                                                          \
    F(s, U64, end, 0)             /* inclusive; UINT64_MAX: to the end of the file */            \
    F(s, U8, type, 0)             /* MKV_LOCK_READ, MKV_LOCK_WRITE, MKV_LOCK_UNLOCK */           \
    F(s, U8, flags, 0)            /* MKV_LOCK_FLOCK, MKV_LOCK_TEST */                            \
    F(s, U32, pid, 0)             /* of the process asking, reported to F_GETLK */
#define MKV_FIELDS_lock_rep(F, s) /* MKV_LOCK_TEST: the first conflicting lock */ \
    F(s, U8, type, 0)             /* MKV_LOCK_UNLOCK: none */                     \
    F(s, U64, start, 0)                                                           \
    F(s, U64, end, 0)                                                             \
    F(s, U32, pid, 0)
/* Replies that are an inode: the obj_info layout under each request's type
 * code (encode and decode them with mkv_desc_obj_info). */
#define MKV_FIELDS_ino_lookup_rep(F, s) MKV_FIELDS_obj_info(F, s)
#define MKV_FIELDS_ino_getattr_rep(F, s) MKV_FIELDS_obj_info(F, s)
#define MKV_FIELDS_ino_setattr_rep(F, s) MKV_FIELDS_obj_info(F, s)
#define MKV_FIELDS_ino_make_rep(F, s) MKV_FIELDS_obj_info(F, s)
#define MKV_FIELDS_ino_link_rep(F, s) MKV_FIELDS_obj_info(F, s)
#define MKV_FIELDS_ino_write_rep(F, s) MKV_FIELDS_obj_info(F, s)
#define MKV_FIELDS_xattr_set_rep(F, s) F(s, U32, flags, 0)
#define MKV_FIELDS_xattr_remove_rep(F, s) F(s, U32, flags, 0)
#define MKV_FIELDS_orphan_drop_rep(F, s) F(s, U32, dropped, 0)

/* Raft command envelope: what the meta leader appends to the log. The
 * client id and sequence make a retried command apply once; now_ns is the
 * leader's clock so that apply is deterministic on every replica. */
#define MKV_FIELDS_raft_cmd(F, s) \
    F(s, U16, type, 0)            \
    F(s, U64, client_id, 0)       \
    F(s, U64, seq, 0)             \
    F(s, I64, now_ns, 0)          \
    F(s, BLOB, payload, MKV_FRAME_MAX)

/* ------------------------------------------------------------------------
 * Records packed inside BLOB lists.
 * ------------------------------------------------------------------------ */
#define MKV_FIELDS_chunk_ref(F, s) \
    F(s, U64, chunk_id, 0)         \
    F(s, U32, version, 0)          \
    F(s, U32, flags, 0)
/* A file's data: [file_off, file_off + len) is stored in chunk chunk_id at
 * version, starting at chunk_off. Extents are sorted by file_off and do not
 * overlap; a gap between extents reads as zeros (a hole). */
#define MKV_FIELDS_extent(F, s) \
    F(s, U64, file_off, 0)      \
    F(s, U64, len, 0)           \
    F(s, U64, chunk_id, 0)      \
    F(s, U32, version, 0)       \
    F(s, U32, flags, 0)         \
    F(s, U64, chunk_off, 0)
#define MKV_FIELDS_attr(F, s) \
    F(s, STR, name, 256)      \
    F(s, STR, value, 4096)
#define MKV_FIELDS_key_entry(F, s) F(s, STR, key, MKV_KEY_MAX)
#define MKV_FIELDS_status_entry(F, s) F(s, I64, status, 0)
#define MKV_FIELDS_list_entry(F, s) \
    F(s, STR, key, MKV_KEY_MAX)     \
    F(s, U8, type, 0)               \
    F(s, U64, size, 0)              \
    F(s, I64, mtime, 0)             \
    F(s, STR, etag, MKV_ETAG_MAX)
#define MKV_FIELDS_bucket_entry(F, s) \
    F(s, STR, name, MKV_BUCKET_MAX)   \
    F(s, I64, ctime, 0)
#define MKV_FIELDS_part_ref(F, s) \
    F(s, U32, part_no, 0)         \
    F(s, STR, etag, MKV_ETAG_MAX)
#define MKV_FIELDS_part_entry(F, s) \
    F(s, U32, part_no, 0)           \
    F(s, U64, size, 0)              \
    F(s, STR, etag, MKV_ETAG_MAX)   \
    F(s, I64, mtime, 0)             \
    F(s, BLOB, attrs, MKV_ATTR_MAX)
#define MKV_FIELDS_upload_entry(F, s) \
    F(s, STR, key, MKV_KEY_MAX)       \
    F(s, STR, upload_id, 64)          \
    F(s, I64, initiated, 0)
#define MKV_FIELDS_key_info(F, s) \
    F(s, STR, access_key, 128)    \
    F(s, U32, flags, 0)           \
    F(s, I64, created, 0)
/* A directory entry. Entries list in cookie order; a cookie stays the same
 * while its entry lives (a rename makes a new one), so a listing resumed
 * from one (telldir/seekdir, a new handle) never returns an entry twice. */
#define MKV_FIELDS_dirent(F, s)                                            \
    F(s, STR, name, MKV_NAME_MAX)                                          \
    F(s, U64, ino, 0)                                                      \
    F(s, U8, type, 0)                                                      \
    F(s, BLOB, attr, 16384) /* MKV_INO_PLUS: an attribute-only obj_info */ \
    F(s, U64, cookie, 0)
/* Roles of member_info (and of META_MEMBER ADD), as in libraft. */
enum { MKV_MEMBER_STANDBY = 0, MKV_MEMBER_VOTER = 1, MKV_MEMBER_SPARE = 2 };
enum { MKV_MEMBER_ADD = 1, MKV_MEMBER_REMOVE = 2, MKV_MEMBER_TRANSFER = 3 };
#define MKV_MEMBER_F_STANDBY 0x01u
#define MKV_FIELDS_member_info(F, s)                                     \
    F(s, U64, id, 0)                                                     \
    F(s, STR, address, 256)   /* meta client address (Raft on PORT+1) */ \
    F(s, U8, role, 0)         /* MKV_MEMBER_* */                         \
    F(s, U64, match_index, 0) /* leader's view of its log (0: unknown) */

/* States of chunk_server_info: as the member that answered knows them
 * (only the leader receives heartbeats: a follower says UNKNOWN). */
enum { MKV_NODE_UNKNOWN = 0, MKV_NODE_UP = 1, MKV_NODE_DOWN = 2, MKV_NODE_DEAD = 3 };
#define MKV_FIELDS_chunk_server_info(F, s)                                        \
    F(s, U64, id, 0) /* 0: from --chunk-servers, not registered */                \
    F(s, STR, address, 256)                                                       \
    F(s, U32, state, 0) /* MKV_NODE_* */                                          \
    F(s, U64, capacity, 0)                                                        \
    F(s, U64, free, 0)                                                            \
    F(s, STR, zone, 64)                                                           \
    F(s, U64, used, 0)                                                            \
    F(s, U64, chunks, 0)                                                          \
    F(s, U64, heard_ms, 0) /* since its last heartbeat; UINT64_MAX: none heard */ \
    F(s, U32, flags, 0)    /* MKV_NODEF_* */                                      \
    F(s, U32, vshards, 0)  /* vshards it holds a replica of */                    \
    F(s, U32, filling, 0)  /* of those, how many it is still filling */

/* Every layout, with its type code. Requests and their replies share the
 * code; records and the envelope have code 0 (they never head a frame). */
#define MKV_MESSAGES(M)                               \
    M(ERROR, 0x0000, error_rep)                       \
    M(PING, 0x0001, ping_req)                         \
    M(PING, 0x0001, ping_rep)                         \
    M(AUTH_HELLO, 0x0005, auth_hello_req)             \
    M(AUTH_HELLO, 0x0005, auth_hello_rep)             \
    M(AUTH, 0x0006, auth_req)                         \
    M(AUTH, 0x0006, auth_rep)                         \
    M(TOKEN_GET, 0x0007, token_get_req)               \
    M(TOKEN_GET, 0x0007, token_get_rep)               \
    M(AUTH_TOKEN, 0x0008, auth_token_req)             \
    M(AUTH_TOKEN, 0x0008, auth_token_rep)             \
    M(CHUNK_WRITE, 0x0101, chunk_write_req)           \
    M(CHUNK_WRITE, 0x0101, chunk_write_rep)           \
    M(CHUNK_READ, 0x0102, chunk_read_req)             \
    M(CHUNK_READ, 0x0102, chunk_read_rep)             \
    M(CHUNK_COMMIT, 0x0103, chunk_commit_req)         \
    M(CHUNK_COMMIT, 0x0103, chunk_commit_rep)         \
    M(CHUNK_DELETE, 0x0104, chunk_delete_req)         \
    M(CHUNK_DELETE, 0x0104, chunk_delete_rep)         \
    M(CHUNK_STAT, 0x0105, chunk_stat_req)             \
    M(CHUNK_STAT, 0x0105, chunk_stat_rep)             \
    M(CHUNK_LIST, 0x0106, chunk_list_req)             \
    M(CHUNK_LIST, 0x0106, chunk_list_rep)             \
    M(META_STATUS, 0x0201, meta_status_req)           \
    M(META_STATUS, 0x0201, meta_status_rep)           \
    M(META_SYNC, 0x0203, meta_sync_req)               \
    M(META_SYNC, 0x0203, meta_sync_rep)               \
    M(META_MEMBER, 0x0204, meta_member_req)           \
    M(META_MEMBER, 0x0204, meta_member_rep)           \
    M(META_ALLOC, 0x0202, meta_alloc_req)             \
    M(META_ALLOC, 0x0202, meta_alloc_rep)             \
    M(BUCKET_CREATE, 0x0210, bucket_create_req)       \
    M(BUCKET_CREATE, 0x0210, bucket_create_rep)       \
    M(BUCKET_DELETE, 0x0211, bucket_delete_req)       \
    M(BUCKET_DELETE, 0x0211, bucket_delete_rep)       \
    M(BUCKET_HEAD, 0x0212, bucket_head_req)           \
    M(BUCKET_HEAD, 0x0212, bucket_head_rep)           \
    M(BUCKET_LIST, 0x0213, bucket_list_req)           \
    M(BUCKET_LIST, 0x0213, bucket_list_rep)           \
    M(OBJ_LOOKUP, 0x0220, obj_lookup_req)             \
    M(OBJ_LOOKUP, 0x0220, obj_info)                   \
    M(OBJ_PUT, 0x0221, obj_put_req)                   \
    M(OBJ_PUT, 0x0221, obj_put_rep)                   \
    M(OBJ_DELETE, 0x0222, obj_delete_req)             \
    M(OBJ_DELETE, 0x0222, obj_delete_rep)             \
    M(OBJ_DELETE_MULTI, 0x0223, obj_delete_multi_req) \
    M(OBJ_DELETE_MULTI, 0x0223, obj_delete_multi_rep) \
    M(OBJ_LIST, 0x0224, obj_list_req)                 \
    M(OBJ_LIST, 0x0224, obj_list_rep)                 \
    M(OBJ_TXN, 0x0225, obj_txn_req)                   \
    M(OBJ_TXN, 0x0225, obj_txn_rep)                   \
    M(MPU_CREATE, 0x0230, mpu_create_req)             \
    M(MPU_CREATE, 0x0230, mpu_create_rep)             \
    M(MPU_PART, 0x0231, mpu_part_req)                 \
    M(MPU_PART, 0x0231, mpu_part_rep)                 \
    M(MPU_COMPLETE, 0x0232, mpu_complete_req)         \
    M(MPU_COMPLETE, 0x0232, mpu_complete_rep)         \
    M(MPU_ABORT, 0x0233, mpu_abort_req)               \
    M(MPU_ABORT, 0x0233, mpu_abort_rep)               \
    M(MPU_GET, 0x0234, mpu_get_req)                   \
    M(MPU_GET, 0x0234, mpu_get_rep)                   \
    M(MPU_LIST_PARTS, 0x0235, mpu_list_parts_req)     \
    M(MPU_LIST_PARTS, 0x0235, mpu_list_parts_rep)     \
    M(MPU_LIST_UPLOADS, 0x0236, mpu_list_uploads_req) \
    M(MPU_LIST_UPLOADS, 0x0236, mpu_list_uploads_rep) \
    M(GC_LIST, 0x0240, gc_list_req)                   \
    M(GC_LIST, 0x0240, gc_list_rep)                   \
    M(GC_DONE, 0x0241, gc_done_req)                   \
    M(GC_DONE, 0x0241, gc_done_rep)                   \
    M(REFCHECK, 0x0242, refcheck_req)                 \
    M(REFCHECK, 0x0242, refcheck_rep)                 \
    M(KEY_PUT, 0x0250, key_put_req)                   \
    M(KEY_PUT, 0x0250, key_put_rep)                   \
    M(KEY_GET, 0x0251, key_get_req)                   \
    M(KEY_GET, 0x0251, key_get_rep)                   \
    M(KEY_DELETE, 0x0252, key_delete_req)             \
    M(KEY_DELETE, 0x0252, key_delete_rep)             \
    M(KEY_LIST, 0x0253, key_list_req)                 \
    M(KEY_LIST, 0x0253, key_list_rep)                 \
    M(INO_LOOKUP, 0x0260, ino_lookup_req)             \
    M(INO_LOOKUP, 0x0260, ino_lookup_rep)             \
    M(INO_GETATTR, 0x0261, ino_getattr_req)           \
    M(INO_GETATTR, 0x0261, ino_getattr_rep)           \
    M(INO_SETATTR, 0x0262, ino_setattr_req)           \
    M(INO_SETATTR, 0x0262, ino_setattr_rep)           \
    M(INO_MAKE, 0x0263, ino_make_req)                 \
    M(INO_MAKE, 0x0263, ino_make_rep)                 \
    M(INO_UNLINK, 0x0264, ino_unlink_req)             \
    M(INO_UNLINK, 0x0264, ino_unlink_rep)             \
    M(INO_RENAME, 0x0265, ino_rename_req)             \
    M(INO_RENAME, 0x0265, ino_rename_rep)             \
    M(INO_LINK, 0x0266, ino_link_req)                 \
    M(INO_LINK, 0x0266, ino_link_rep)                 \
    M(INO_READDIR, 0x0267, ino_readdir_req)           \
    M(INO_READDIR, 0x0267, ino_readdir_rep)           \
    M(INO_WRITE, 0x0268, ino_write_req)               \
    M(INO_WRITE, 0x0268, ino_write_rep)               \
    M(INO_ETAG, 0x0269, ino_etag_req)                 \
    M(INO_ETAG, 0x0269, ino_etag_rep)                 \
    M(XATTR_SET, 0x0270, xattr_set_req)               \
    M(XATTR_SET, 0x0270, xattr_set_rep)               \
    M(XATTR_GET, 0x0271, xattr_get_req)               \
    M(XATTR_GET, 0x0271, xattr_get_rep)               \
    M(XATTR_LIST, 0x0272, xattr_list_req)             \
    M(XATTR_LIST, 0x0272, xattr_list_rep)             \
    M(XATTR_REMOVE, 0x0273, xattr_remove_req)         \
    M(XATTR_REMOVE, 0x0273, xattr_remove_rep)         \
    M(ORPHAN_DROP, 0x0274, orphan_drop_req)           \
    M(ORPHAN_DROP, 0x0274, orphan_drop_rep)           \
    M(LOCK, 0x0280, lock_req)                         \
    M(LOCK, 0x0280, lock_rep)                         \
    M(NODE_REGISTER, 0x0290, node_register_req)       \
    M(NODE_REGISTER, 0x0290, node_register_rep)       \
    M(NODE_HEARTBEAT, 0x0291, node_heartbeat_req)     \
    M(NODE_HEARTBEAT, 0x0291, node_heartbeat_rep)     \
    M(NODE_LIST, 0x0292, node_list_req)               \
    M(NODE_LIST, 0x0292, node_list_rep)               \
    M(VSHARD_SET, 0x0293, vshard_set_req)             \
    M(VSHARD_SET, 0x0293, vshard_set_rep)             \
    M(VSHARD_LIST, 0x0294, vshard_list_req)           \
    M(VSHARD_LIST, 0x0294, vshard_list_rep)           \
    M(NODE_DRAIN, 0x0295, node_drain_req)             \
    M(NODE_DRAIN, 0x0295, node_drain_rep)             \
    M(VSHARD_MARK, 0x0296, vshard_mark_req)           \
    M(VSHARD_MARK, 0x0296, vshard_mark_rep)           \
    M(VSHARD_FILLED, 0x0297, vshard_filled_req)       \
    M(VSHARD_FILLED, 0x0297, vshard_filled_rep)       \
    M(RECORD, 0x0000, raft_cmd)                       \
    M(RECORD, 0x0000, chunk_ref)                      \
    M(RECORD, 0x0000, extent)                         \
    M(RECORD, 0x0000, attr)                           \
    M(RECORD, 0x0000, key_entry)                      \
    M(RECORD, 0x0000, status_entry)                   \
    M(RECORD, 0x0000, txn_op)                         \
    M(RECORD, 0x0000, list_entry)                     \
    M(RECORD, 0x0000, bucket_entry)                   \
    M(RECORD, 0x0000, part_ref)                       \
    M(RECORD, 0x0000, part_entry)                     \
    M(RECORD, 0x0000, upload_entry)                   \
    M(RECORD, 0x0000, key_info)                       \
    M(RECORD, 0x0000, dirent)                         \
    M(RECORD, 0x0000, chunk_server_info)              \
    M(RECORD, 0x0000, member_info)                    \
    M(RECORD, 0x0000, node_rec)                       \
    M(RECORD, 0x0000, vshard_rec)                     \
    M(RECORD, 0x0000, vshard_map)                     \
    M(RECORD, 0x0000, vshard_mark)                    \
    M(RECORD, 0x0000, chunk_held)

/* Type codes as an enum: MKV_MSG_CHUNK_WRITE, ... (requests and replies
 * share them; the duplicates are harmless enum re-definitions avoided by
 * listing each code once here). */
enum mkv_msg_type {
    MKV_MSG_ERROR = 0x0000,
    MKV_MSG_PING = 0x0001,
    MKV_MSG_AUTH_HELLO = 0x0005,
    MKV_MSG_AUTH = 0x0006,
    MKV_MSG_TOKEN_GET = 0x0007,
    MKV_MSG_AUTH_TOKEN = 0x0008,
    MKV_MSG_CHUNK_WRITE = 0x0101,
    MKV_MSG_CHUNK_READ = 0x0102,
    MKV_MSG_CHUNK_COMMIT = 0x0103,
    MKV_MSG_CHUNK_DELETE = 0x0104,
    MKV_MSG_CHUNK_STAT = 0x0105,
    MKV_MSG_CHUNK_LIST = 0x0106,
    MKV_MSG_META_STATUS = 0x0201,
    MKV_MSG_META_ALLOC = 0x0202,
    MKV_MSG_META_SYNC = 0x0203,
    MKV_MSG_META_MEMBER = 0x0204,
    MKV_MSG_BUCKET_CREATE = 0x0210,
    MKV_MSG_BUCKET_DELETE = 0x0211,
    MKV_MSG_BUCKET_HEAD = 0x0212,
    MKV_MSG_BUCKET_LIST = 0x0213,
    MKV_MSG_OBJ_LOOKUP = 0x0220,
    MKV_MSG_OBJ_PUT = 0x0221,
    MKV_MSG_OBJ_DELETE = 0x0222,
    MKV_MSG_OBJ_DELETE_MULTI = 0x0223,
    MKV_MSG_OBJ_LIST = 0x0224,
    MKV_MSG_OBJ_TXN = 0x0225,
    MKV_MSG_MPU_CREATE = 0x0230,
    MKV_MSG_MPU_PART = 0x0231,
    MKV_MSG_MPU_COMPLETE = 0x0232,
    MKV_MSG_MPU_ABORT = 0x0233,
    MKV_MSG_MPU_GET = 0x0234,
    MKV_MSG_MPU_LIST_PARTS = 0x0235,
    MKV_MSG_MPU_LIST_UPLOADS = 0x0236,
    MKV_MSG_GC_LIST = 0x0240,
    MKV_MSG_GC_DONE = 0x0241,
    MKV_MSG_REFCHECK = 0x0242,
    MKV_MSG_KEY_PUT = 0x0250,
    MKV_MSG_KEY_GET = 0x0251,
    MKV_MSG_KEY_DELETE = 0x0252,
    MKV_MSG_KEY_LIST = 0x0253,
    MKV_MSG_INO_LOOKUP = 0x0260,
    MKV_MSG_INO_GETATTR = 0x0261,
    MKV_MSG_INO_SETATTR = 0x0262,
    MKV_MSG_INO_MAKE = 0x0263,
    MKV_MSG_INO_UNLINK = 0x0264,
    MKV_MSG_INO_RENAME = 0x0265,
    MKV_MSG_INO_LINK = 0x0266,
    MKV_MSG_INO_READDIR = 0x0267,
    MKV_MSG_INO_WRITE = 0x0268,
    MKV_MSG_INO_ETAG = 0x0269,
    MKV_MSG_XATTR_SET = 0x0270,
    MKV_MSG_XATTR_GET = 0x0271,
    MKV_MSG_XATTR_LIST = 0x0272,
    MKV_MSG_XATTR_REMOVE = 0x0273,
    MKV_MSG_ORPHAN_DROP = 0x0274,
    MKV_MSG_LOCK = 0x0280,
    MKV_MSG_NODE_REGISTER = 0x0290,
    MKV_MSG_NODE_HEARTBEAT = 0x0291,
    MKV_MSG_NODE_LIST = 0x0292,
    MKV_MSG_VSHARD_SET = 0x0293,
    MKV_MSG_VSHARD_LIST = 0x0294,
    MKV_MSG_NODE_DRAIN = 0x0295,
    MKV_MSG_VSHARD_MARK = 0x0296,
    MKV_MSG_VSHARD_FILLED = 0x0297,
};

/* Values of small enumerated fields. */
enum { MKV_T_FILE = 1, MKV_T_DIR = 2, MKV_T_SYMLINK = 3, MKV_T_FIFO = 4 };
enum { MKV_DF_IMPLICIT = 0x01 }; /* directory made by a deeper S3 key */
enum {
    MKV_PUT_IF_NONE_MATCH = 0x01, /* fail with MKV_EPRECONDITION if the key exists */
    MKV_PUT_KEEP_DATA = 0x02,     /* replace metadata only; extents unchanged */
    MKV_PUT_DIR = 0x04,           /* make (or keep) the key an explicit directory */
};
enum { MKV_VSHARD_LIST_HEADER = 0x01 }; /* epoch and factor only */
enum { MKV_TXN_PUT = 1, MKV_TXN_DELETE = 2 };
enum { MKV_TXN_MUST_EXIST = 0x100 }; /* delete: fail with MKV_ENOTFOUND if the key is absent */
enum { MKV_KEYF_ADMIN = 0x01, MKV_KEYF_DISABLED = 0x02 };
enum { MKV_INO_ATTR = 0x01, MKV_INO_PLUS = 0x02 };
enum {
    MKV_SET_MODE = 0x01,
    MKV_SET_UID = 0x02,
    MKV_SET_GID = 0x04,
    MKV_SET_SIZE = 0x08,
    MKV_SET_ATIME = 0x10,
    MKV_SET_MTIME = 0x20,
    MKV_SET_ATIME_NOW = 0x40,
    MKV_SET_MTIME_NOW = 0x80,
};
enum { MKV_MAKE_EXCL = 0x01 };
enum { MKV_UNLINK_DIR = 0x01, MKV_UNLINK_KEEP = 0x02 };
enum { MKV_RENAME_NOREPLACE = 0x10, MKV_RENAME_EXCHANGE = 0x20 };
enum {
    MKV_WRITE_INLINE = 0x01,  /* data is the whole content: drop every extent */
    MKV_WRITE_REPLACE = 0x02, /* extents are the whole content: drop old data */
};
enum { MKV_XATTR_CREATE = 0x01, MKV_XATTR_REPLACE = 0x02 };
enum { MKV_LOCK_UNLOCK = 0, MKV_LOCK_READ = 1, MKV_LOCK_WRITE = 2 };
enum {
    MKV_LOCK_FLOCK = 0x01, /* a whole-file flock; separate from record locks, as on Linux */
    MKV_LOCK_TEST = 0x02,  /* F_GETLK: report a conflict, change nothing */
};
enum { MKV_LIST_V2 = 0x01, MKV_LIST_NO_DIRS = 0x02 };
/* meta_alloc flags. MKV_ALLOC_INODES: skip count inode numbers (the
 * leader of a group of one does so when it starts, so that numbers it had
 * answered early before a crash are never given out again). */
enum { MKV_ALLOC_INODES = 0x01 };
enum { MKV_CHUNK_SYNC = 0x01 }; /* chunk_write flags: reply after fsync (default) */

/* C structs for every layout: struct mkv_<name>. */
#define MKV_STRUCT_FIELD(s, t, n, max) MKV_CTYPE_##t n;
#define MKV_DECLARE_STRUCT(code_name, code, name) \
    struct mkv_##name                             \
    {                                             \
        MKV_FIELDS_##name(MKV_STRUCT_FIELD, name) \
    };
MKV_MESSAGES(MKV_DECLARE_STRUCT)
#undef MKV_DECLARE_STRUCT

/* Descriptors: mkv_desc_<name>. */
#define MKV_DECLARE_DESC(code_name, code, name) \
    MKV_API extern const struct mkv_msgdesc mkv_desc_##name;
MKV_MESSAGES(MKV_DECLARE_DESC)
#undef MKV_DECLARE_DESC

/* Bytes mkv_msg_encode will write for msg. */
MKV_API size_t mkv_msg_size(const struct mkv_msgdesc *d, const void *msg);
/* Encodes msg into buf[cap]; *out_len gets the size. Returns 0, -ENOSPC
 * when cap is too small, or -EINVAL when a field is over its bound or a
 * STR holds a NUL byte. */
MKV_API int mkv_msg_encode(const struct mkv_msgdesc *d, const void *msg, uint8_t *buf, size_t cap,
                           size_t *out_len);
/* Appends the encoding of msg to b (for building record lists). */
MKV_API int mkv_msg_append(struct mkv_buf *b, const struct mkv_msgdesc *d, const void *msg);
/* Decodes buf[len] into msg (zeroed first). Slices point into buf.
 * Returns 0 or -EPROTO (truncated, over a bound, NUL inside a STR). */
MKV_API int mkv_msg_decode(const struct mkv_msgdesc *d, const uint8_t *buf, size_t len, void *msg);
/* Decodes the next record of a packed list and advances *cursor. Returns 1
 * when a record was decoded, 0 at the end of the list, -EPROTO on a bad
 * record. */
MKV_API int mkv_msg_next(const struct mkv_msgdesc *d, struct mkv_slice *cursor, void *msg);
/* The descriptor of a request type (NULL when unknown). */
MKV_API const struct mkv_msgdesc *mkv_msg_request_desc(uint16_t type);
/* The descriptor of a reply type (NULL when unknown). */
MKV_API const struct mkv_msgdesc *mkv_msg_reply_desc(uint16_t type);
/* 1 for the request types marked [raft] above (they change state). */
MKV_API int mkv_msg_is_raft(uint16_t type);
/* A short name for logs ("CHUNK_WRITE"), "UNKNOWN" if none. */
MKV_API const char *mkv_msg_name(uint16_t type);

#endif /* MKV_WIRE_H */
