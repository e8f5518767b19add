/* Fuzz target: the wire decoder. Input: a frame header and payload as a
 * peer could send them. Every request and reply layout and every record
 * layout is tried on the payload; nothing may crash or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "minikv/wire.h"

#define TRY(code_name, code, name)                                              \
    {                                                                           \
        struct mkv_##name m;                                                    \
        struct mkv_slice cur = {data, (uint32_t)size};                          \
        (void)mkv_msg_decode(&mkv_desc_##name, data, size, &m);                 \
        for (int i = 0; i < 64 && mkv_msg_next(&mkv_desc_##name, &cur, &m) == 1; i++) \
            ;                                                                   \
    }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mkv_frame_hdr h;
    if (size >= MKV_FRAME_HDR_SIZE && mkv_frame_hdr_decode(data, &h) == 0) {
        const uint8_t *payload = data + MKV_FRAME_HDR_SIZE;
        size_t plen = size - MKV_FRAME_HDR_SIZE;
        if (h.length <= plen) {
            const struct mkv_msgdesc *d;
            (void)mkv_frame_check(data, &h, payload);
            d = (h.flags & MKV_FRAME_REPLY) ? mkv_msg_reply_desc(h.type) : mkv_msg_request_desc(h.type);
            if (d) {
                void *m = malloc(d->size);
                if (m) {
                    (void)mkv_msg_decode(d, payload, h.length, m);
                    free(m);
                }
            }
        }
    }
    MKV_MESSAGES(TRY)
    return 0;
}
