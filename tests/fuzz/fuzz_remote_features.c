/*
 * libFuzzer target for the remote's <stream:features/> reader (proxy/remote.c:
 * xf_remote_parse_features, xf_remote_mechanisms_have) — bytes a remote server sends.
 * The input is the stream after a fixed server header; every first-level element is
 * given to the reader with its exact bytes, and the raw input to the mechanism matcher.
 * Checks: no read past the bytes given (ASan), results are 0/1, the reader refuses what
 * is not a features element.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/remote.h"
#include "proxy/xmlstream.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char hdr[] =
        "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        "xmlns:db='jabber:server:dialback' from='r.example' id='i' version='1.0'>";
    size_t hl = sizeof(hdr) - 1;
    char *all = malloc(hl + size + 1);
    if (all == NULL)
        return 0;
    memcpy(all, hdr, hl);
    memcpy(all + hl, data, size);
    char *copy = malloc(size ? size : 1);
    if (copy == NULL) {
        free(all);
        return 0;
    }
    memcpy(copy, data, size);           /* exact-size buffer: ASan sees any overread */
    int m = xf_remote_mechanisms_have(copy, size, "EXTERNAL");
    CHECK(m == 0 || m == 1);
    free(copy);

    xf_xml *x = xf_xml_new(0, 65536);
    if (x != NULL && xf_xml_push(x, all, hl + size) == 0) {
        xf_xml_event ev;
        while (xf_xml_next(x, &ev) != XF_XML_NONE) {
            if (ev.type == XF_XML_ERROR || ev.type == XF_XML_STREAM_END)
                break;
            if (ev.type != XF_XML_ELEMENT)
                continue;
            size_t len = (size_t)(ev.span.end - ev.span.start);
            char *elem = malloc(len ? len : 1);
            if (elem == NULL)
                break;
            memcpy(elem, all + ev.span.start, len);
            xf_remote_features f;
            int r = xf_remote_parse_features(&ev, elem, len, &f);
            int is_features = strcmp(ev.name, "features") == 0 &&
                              strcmp(ev.ns_uri, XF_NS_STREAMS) == 0;
            CHECK(is_features ? r == 0 : r == -1);
            CHECK(f.starttls <= 1 && f.external <= 1 && f.dialback <= 1 && f.mechanisms <= 1);
            CHECK(!f.external || f.mechanisms);
            free(elem);
        }
    }
    xf_xml_free(x);
    free(all);
    return 0;
}
