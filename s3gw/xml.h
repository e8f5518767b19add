/* minikv gateway: a small pull parser for S3 request bodies
 * (CompleteMultipartUpload, Delete, CreateBucketConfiguration, ...).
 *
 * The whole document is in memory (the caller bounds its size); the parser
 * walks it token by token. Supported: elements, attributes (read on
 * demand), character data with the five predefined entities and numeric
 * character references, CDATA sections, comments and processing
 * instructions (skipped), an XML declaration. Refused as MalformedXML:
 * DOCTYPE (so no entity declarations, no entity expansion), unknown
 * entities, mismatched tags, text or a second element outside the root,
 * control characters, invalid UTF-8, nesting deeper than MKV_XML_MAX_DEPTH,
 * one text run longer than MKV_XML_MAX_TEXT. Namespace prefixes are ignored:
 * names are compared on their local part.
 *
 *   struct mkv_xml x; struct mkv_xml_token t;
 *   mkv_xml_init(&x, body, len);
 *   while ((e = mkv_xml_next(&x, &t)) == MKV_S3_OK && t.type != MKV_XML_EOF) {
 *       if (t.type == MKV_XML_START && mkv_xml_is(&t, "Key"))
 *           e = mkv_xml_text(&x, key, sizeof key, &keylen);
 *       ...
 *   }
 *   mkv_xml_free(&x);
 *
 * Errors are enum mkv_s3_error (MalformedXML, InternalError for memory) and
 * sticky. */
#ifndef MKV_S3GW_XML_H
#define MKV_S3GW_XML_H

#include <stddef.h>
#include <stdint.h>

#include "minikv/buf.h"
#include "minikv/common.h"
#include "s3err.h"

#define MKV_XML_MAX_DEPTH 32
#define MKV_XML_MAX_TEXT (64 * 1024) /* one decoded text or attribute run */

enum mkv_xml_type {
    MKV_XML_START = 1, /* <name ...> or <name .../> (an END follows) */
    MKV_XML_END,       /* </name> */
    MKV_XML_TEXT,      /* character data, decoded */
    MKV_XML_EOF,       /* the root element closed and the document ended */
};

struct mkv_xml_token
{
    enum mkv_xml_type type;
    const char *name;  /* START/END: local name, points into the document */
    size_t nlen;
    const char *text;  /* TEXT: decoded, NUL-terminated, valid until the next call */
    size_t tlen;
    int ws;            /* TEXT: only whitespace */
    unsigned depth;    /* START/END: 1 for the root */
    const char *attrs; /* START: raw attribute text, for mkv_xml_attr */
    size_t alen;
};

struct mkv_xml
{
    const char *p, *end;
    enum mkv_s3_error err;
    int seen_root;
    int pending_end; /* an empty-element tag is waiting for its END */
    unsigned depth;
    struct
    {
        const char *name; /* qualified name as written */
        size_t nlen;
    } stack[MKV_XML_MAX_DEPTH];
    struct mkv_buf text;
};

MKV_API void mkv_xml_init(struct mkv_xml *x, const char *doc, size_t len);
MKV_API enum mkv_s3_error mkv_xml_next(struct mkv_xml *x, struct mkv_xml_token *t);
/* Right after a START: the element's text content up to its END (which is
 * consumed), concatenated and decoded into buf (cap bytes, NUL-terminated).
 * A child element, or text longer than cap-1, is MalformedXML. */
MKV_API enum mkv_s3_error mkv_xml_text(struct mkv_xml *x, char *buf, size_t cap, size_t *len);
/* Right after a START: skips the element and everything in it. */
MKV_API enum mkv_s3_error mkv_xml_skip(struct mkv_xml *x);
/* 1 if t is a START or END whose local name is name. */
MKV_API int mkv_xml_is(const struct mkv_xml_token *t, const char *name);
/* The value of attribute name (local part) of a START, decoded into buf;
 * returns 1 if present, 0 if not, -EINVAL if malformed or too long. */
MKV_API int mkv_xml_attr(const struct mkv_xml_token *t, const char *name, char *buf, size_t cap);
MKV_API void mkv_xml_free(struct mkv_xml *x);

#endif /* MKV_S3GW_XML_H */
