/* minikv: frame and message codec (see lib/minikv/wire.h for the format). */
#include <errno.h>
#include <string.h>

#include "minikv/crc32c.h"
#include "minikv/wire.h"

/* Descriptor tables generated from the field lists in wire.h. */
#define MKV_DESC_FIELD(s, t, n, max) {MKV_F_##t, offsetof(struct mkv_##s, n), (max), #n},
#define MKV_DEFINE_DESC(code_name, code, name)                                          \
    static const struct mkv_field mkv_fields_##name[] = {                              \
        MKV_FIELDS_##name(MKV_DESC_FIELD, name)};                                      \
    const struct mkv_msgdesc mkv_desc_##name = {(code), #code_name, mkv_fields_##name, \
                                                MKV_ARRAY_SIZE(mkv_fields_##name),     \
                                                sizeof(struct mkv_##name)};
MKV_MESSAGES(MKV_DEFINE_DESC)
#undef MKV_DEFINE_DESC

/* Every descriptor, in catalogue order: requests precede their replies. */
#define MKV_DESC_PTR(code_name, code, name) &mkv_desc_##name,
static const struct mkv_msgdesc *const all_descs[] = {MKV_MESSAGES(MKV_DESC_PTR)};
#undef MKV_DESC_PTR

static const uint8_t *field_ptr(const void *msg, const struct mkv_field *f)
{
    return (const uint8_t *)msg + f->offset;
}

size_t mkv_msg_size(const struct mkv_msgdesc *d, const void *msg)
{
    size_t n = 0;
    for (unsigned i = 0; i < d->nfields; i++) {
        const struct mkv_field *f = &d->fields[i];
        switch (f->type) {
        case MKV_F_U8: n += 1; break;
        case MKV_F_U16: n += 2; break;
        case MKV_F_U32: n += 4; break;
        case MKV_F_U64:
        case MKV_F_I64: n += 8; break;
        case MKV_F_STR: n += 2 + ((const struct mkv_slice *)field_ptr(msg, f))->len; break;
        case MKV_F_BLOB: n += 4 + ((const struct mkv_slice *)field_ptr(msg, f))->len; break;
        }
    }
    return n;
}

int mkv_msg_encode(const struct mkv_msgdesc *d, const void *msg, uint8_t *buf, size_t cap,
                   size_t *out_len)
{
    size_t pos = 0;
    for (unsigned i = 0; i < d->nfields; i++) {
        const struct mkv_field *f = &d->fields[i];
        const uint8_t *src = field_ptr(msg, f);
        size_t need;
        switch (f->type) {
        case MKV_F_U8:
            if (cap - pos < 1) return -ENOSPC;
            buf[pos++] = *src;
            break;
        case MKV_F_U16: {
            uint16_t v;
            memcpy(&v, src, sizeof v);
            if (cap - pos < 2) return -ENOSPC;
            mkv_put_le16(buf + pos, v);
            pos += 2;
            break;
        }
        case MKV_F_U32: {
            uint32_t v;
            memcpy(&v, src, sizeof v);
            if (cap - pos < 4) return -ENOSPC;
            mkv_put_le32(buf + pos, v);
            pos += 4;
            break;
        }
        case MKV_F_U64:
        case MKV_F_I64: {
            uint64_t v;
            memcpy(&v, src, sizeof v);
            if (cap - pos < 8) return -ENOSPC;
            mkv_put_le64(buf + pos, v);
            pos += 8;
            break;
        }
        case MKV_F_STR:
        case MKV_F_BLOB: {
            const struct mkv_slice *sl = (const struct mkv_slice *)src;
            size_t hdr = f->type == MKV_F_STR ? 2 : 4;
            if (sl->len > f->max || (sl->len && !sl->p)) return -EINVAL;
            if (f->type == MKV_F_STR && sl->len && memchr(sl->p, 0, sl->len)) return -EINVAL;
            need = hdr + sl->len;
            if (cap - pos < need) return -ENOSPC;
            if (hdr == 2)
                mkv_put_le16(buf + pos, (uint16_t)sl->len);
            else
                mkv_put_le32(buf + pos, sl->len);
            if (sl->len) memcpy(buf + pos + hdr, sl->p, sl->len);
            pos += need;
            break;
        }
        default: return -EINVAL;
        }
    }
    *out_len = pos;
    return 0;
}

int mkv_msg_append(struct mkv_buf *b, const struct mkv_msgdesc *d, const void *msg)
{
    size_t need = mkv_msg_size(d, msg), len;
    int rv = mkv_buf_reserve(b, need);
    if (rv) return rv;
    rv = mkv_msg_encode(d, msg, b->p + b->len, b->cap - b->len, &len);
    if (rv) return rv;
    b->len += len;
    return 0;
}

/* Decodes one layout from buf[len]; *used gets the bytes consumed. */
static int decode_at(const struct mkv_msgdesc *d, const uint8_t *buf, size_t len, void *msg,
                     size_t *used)
{
    size_t pos = 0;
    memset(msg, 0, d->size);
    for (unsigned i = 0; i < d->nfields; i++) {
        const struct mkv_field *f = &d->fields[i];
        uint8_t *dst = (uint8_t *)msg + f->offset;
        switch (f->type) {
        case MKV_F_U8:
            if (len - pos < 1) return -EPROTO;
            *dst = buf[pos++];
            break;
        case MKV_F_U16: {
            if (len - pos < 2) return -EPROTO;
            uint16_t v = mkv_get_le16(buf + pos);
            memcpy(dst, &v, sizeof v);
            pos += 2;
            break;
        }
        case MKV_F_U32: {
            if (len - pos < 4) return -EPROTO;
            uint32_t v = mkv_get_le32(buf + pos);
            memcpy(dst, &v, sizeof v);
            pos += 4;
            break;
        }
        case MKV_F_U64:
        case MKV_F_I64: {
            if (len - pos < 8) return -EPROTO;
            uint64_t v = mkv_get_le64(buf + pos);
            memcpy(dst, &v, sizeof v);
            pos += 8;
            break;
        }
        case MKV_F_STR:
        case MKV_F_BLOB: {
            size_t hdr = f->type == MKV_F_STR ? 2 : 4, n;
            struct mkv_slice sl;
            if (len - pos < hdr) return -EPROTO;
            n = hdr == 2 ? mkv_get_le16(buf + pos) : mkv_get_le32(buf + pos);
            pos += hdr;
            if (n > f->max || n > len - pos) return -EPROTO;
            if (f->type == MKV_F_STR && n && memchr(buf + pos, 0, n)) return -EPROTO;
            sl.p = n ? buf + pos : (const uint8_t *)"";
            sl.len = (uint32_t)n;
            memcpy(dst, &sl, sizeof sl);
            pos += n;
            break;
        }
        default: return -EPROTO;
        }
    }
    *used = pos;
    return 0;
}

int mkv_msg_decode(const struct mkv_msgdesc *d, const uint8_t *buf, size_t len, void *msg)
{
    size_t used;
    if (!buf && len) return -EPROTO;
    return decode_at(d, buf ? buf : (const uint8_t *)"", len, msg, &used);
}

int mkv_msg_next(const struct mkv_msgdesc *d, struct mkv_slice *cursor, void *msg)
{
    size_t used;
    int rv;
    if (cursor->len == 0) return 0;
    rv = decode_at(d, cursor->p, cursor->len, msg, &used);
    if (rv) return rv;
    if (used == 0) return -EPROTO; /* an empty layout would loop forever */
    cursor->p += used;
    cursor->len -= (uint32_t)used;
    return 1;
}

static const struct mkv_msgdesc *find_desc(uint16_t type, int want_reply)
{
    /* Requests and replies are listed in pairs with the same code: the first
     * is the request, the second the reply. */
    for (size_t i = 0; i < MKV_ARRAY_SIZE(all_descs); i++) {
        const struct mkv_msgdesc *d = all_descs[i];
        if (d->type != type || strcmp(d->name, "RECORD") == 0 || strcmp(d->name, "ERROR") == 0)
            continue;
        if (!want_reply) return d;
        if (i + 1 < MKV_ARRAY_SIZE(all_descs) && all_descs[i + 1]->type == type)
            return all_descs[i + 1];
        return NULL;
    }
    return NULL;
}

const struct mkv_msgdesc *mkv_msg_request_desc(uint16_t type)
{
    return find_desc(type, 0);
}

const struct mkv_msgdesc *mkv_msg_reply_desc(uint16_t type)
{
    return find_desc(type, 1);
}

const char *mkv_msg_name(uint16_t type)
{
    const struct mkv_msgdesc *d = find_desc(type, 0);
    return d ? d->name : "UNKNOWN";
}

void mkv_frame_hdr_encode(struct mkv_frame_hdr *hdr, const void *payload, uint8_t *out)
{
    uint32_t crc;
    mkv_put_le16(out, MKV_WIRE_MAGIC);
    out[2] = MKV_WIRE_VERSION;
    out[3] = hdr->flags;
    mkv_put_le16(out + 4, hdr->type);
    mkv_put_le16(out + 6, 0);
    mkv_put_le32(out + 8, (uint32_t)hdr->status);
    mkv_put_le32(out + 12, hdr->length);
    mkv_put_le64(out + 16, hdr->req_id);
    crc = mkv_crc32c(0, out, 24);
    if (hdr->length) crc = mkv_crc32c(crc, payload, hdr->length);
    mkv_put_le32(out + 24, crc);
    hdr->magic = MKV_WIRE_MAGIC;
    hdr->version = MKV_WIRE_VERSION;
    hdr->crc = crc;
}

int mkv_frame_hdr_decode(const uint8_t *in, struct mkv_frame_hdr *hdr)
{
    hdr->magic = mkv_get_le16(in);
    hdr->version = in[2];
    hdr->flags = in[3];
    hdr->type = mkv_get_le16(in + 4);
    hdr->status = (int32_t)mkv_get_le32(in + 8);
    hdr->length = mkv_get_le32(in + 12);
    hdr->req_id = mkv_get_le64(in + 16);
    hdr->crc = mkv_get_le32(in + 24);
    if (hdr->magic != MKV_WIRE_MAGIC || hdr->version != MKV_WIRE_VERSION) return -EPROTO;
    if (hdr->length > MKV_FRAME_MAX) return -EPROTO;
    return 0;
}

int mkv_frame_check(const uint8_t *hdr_bytes, const struct mkv_frame_hdr *hdr,
                    const void *payload)
{
    uint32_t crc = mkv_crc32c(0, hdr_bytes, 24);
    if (hdr->length) crc = mkv_crc32c(crc, payload, hdr->length);
    return crc == hdr->crc ? 0 : -EBADMSG;
}

int mkv_msg_is_raft(uint16_t type)
{
    switch (type) {
    case MKV_MSG_META_ALLOC:
    case MKV_MSG_BUCKET_CREATE:
    case MKV_MSG_BUCKET_DELETE:
    case MKV_MSG_OBJ_PUT:
    case MKV_MSG_OBJ_DELETE:
    case MKV_MSG_OBJ_DELETE_MULTI:
    case MKV_MSG_OBJ_TXN:
    case MKV_MSG_MPU_CREATE:
    case MKV_MSG_MPU_PART:
    case MKV_MSG_MPU_COMPLETE:
    case MKV_MSG_MPU_ABORT:
    case MKV_MSG_GC_DONE:
    case MKV_MSG_KEY_PUT:
    case MKV_MSG_KEY_DELETE:
    case MKV_MSG_INO_SETATTR:
    case MKV_MSG_INO_MAKE:
    case MKV_MSG_INO_UNLINK:
    case MKV_MSG_INO_RENAME:
    case MKV_MSG_INO_LINK:
    case MKV_MSG_INO_WRITE:
    case MKV_MSG_INO_ETAG:
    case MKV_MSG_XATTR_SET:
    case MKV_MSG_XATTR_REMOVE:
    case MKV_MSG_ORPHAN_DROP:
    case MKV_MSG_NODE_REGISTER: return 1;
    default: return 0;
    }
}
