/* Fuzz target: the XML pull parser, walked the way S3 operations walk it
 * (element text, attributes, skipping). */
#include <stddef.h>
#include <stdint.h>

#include "xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mkv_xml x;
    struct mkv_xml_token t;
    char buf[256];
    size_t len;
    unsigned n = 0;
    mkv_xml_init(&x, (const char *)data, size);
    while (mkv_xml_next(&x, &t) == MKV_S3_OK && t.type != MKV_XML_EOF) {
        if (t.type != MKV_XML_START) continue;
        (void)mkv_xml_attr(&t, "xmlns", buf, sizeof buf);
        if (mkv_xml_is(&t, "Key") || mkv_xml_is(&t, "ETag"))
            (void)mkv_xml_text(&x, buf, sizeof buf, &len);
        else if (mkv_xml_is(&t, "Skip") || (++n % 7) == 0)
            (void)mkv_xml_skip(&x);
    }
    mkv_xml_free(&x);
    return 0;
}
