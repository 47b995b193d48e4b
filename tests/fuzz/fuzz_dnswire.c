/* libFuzzer: xf_dnswire_parse on arbitrary DNS answers (the bytes a resolver, or an
   attacker spoofing one, sends back), for the four questions xmppfront asks (SRV, A,
   AAAA, TLSA).
   Checks the result's invariants, the deep copy, and that the SRV result feeds
   xf_srv_order safely. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/dnswire.h"
#include "proxy/srvorder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t zero_rand(void *ctx, uint32_t bound)
{
    (void)ctx;
    return bound / 2;
}

static void check(const uint8_t *data, size_t size, const char *qname, uint16_t qtype)
{
    xf_dns_result r, c;
    if (xf_dnswire_parse(data, size, qname, qtype, &r) < 0) {
        xf_dns_result_free(&r);
        return;
    }
    if (r.status < XF_DNS_NOERROR || r.status > XF_DNS_ERROR || r.status == XF_DNS_TIMEOUT)
        abort();
    if (r.n_srv > XF_DNS_MAX_RECORDS || r.n_addr > XF_DNS_MAX_RECORDS ||
        r.n_tlsa > XF_DNS_MAX_RECORDS) abort();
    if (r.status == XF_DNS_NOERROR && qtype == XF_DNS_T_TLSA && r.n_tlsa == 0) abort();
    if (qtype != XF_DNS_T_TLSA && (r.n_tlsa || r.tlsa_rdata)) abort();
    if (r.status != XF_DNS_NOERROR && r.n_tlsa) abort();
    {
        size_t sum = 0, len;
        for (size_t i = 0; i < r.n_tlsa; i++) {
            const unsigned char *rd = xf_dns_tlsa_rdata(&r, i, &len);
            if (!rd || len < 3 || r.tlsa[i].off != sum || len > size) abort();
            sum += len;
            volatile unsigned char last = rd[len - 1];   /* in bounds (ASan) */
            (void)last;
        }
        if (sum != r.tlsa_rdata_len) abort();
    }
    if (r.status == XF_DNS_NOERROR && qtype == XF_DNS_T_SRV && r.n_srv == 0) abort();
    if (r.status == XF_DNS_NOERROR && (qtype == XF_DNS_T_A || qtype == XF_DNS_T_AAAA) &&
        r.n_addr == 0) abort();
    if (r.status != XF_DNS_NOERROR && (r.n_srv || r.n_addr)) abort();
    if (qtype != XF_DNS_T_SRV && r.n_srv) abort();
    if ((qtype == XF_DNS_T_SRV || qtype == XF_DNS_T_TLSA) && r.n_addr) abort();
    if (memchr(r.cname, '\0', sizeof r.cname) == NULL) abort();
    for (size_t i = 0; i < r.n_srv; i++) {
        size_t l = strnlen(r.srv[i].target, sizeof r.srv[i].target);
        if (l == 0 || l >= sizeof r.srv[i].target) abort();
    }
    for (size_t i = 0; i < r.n_addr; i++)
        if (r.addr[i].family != (qtype == XF_DNS_T_A ? AF_INET : AF_INET6)) abort();
    if (xf_dns_result_copy(&c, &r) == 0) {
        if (c.n_srv != r.n_srv || c.n_addr != r.n_addr ||
            (r.n_srv && memcmp(c.srv, r.srv, r.n_srv * sizeof *r.srv)) ||
            (r.n_addr && memcmp(c.addr, r.addr, r.n_addr * sizeof *r.addr)) ||
            c.n_tlsa != r.n_tlsa || c.tlsa_rdata_len != r.tlsa_rdata_len ||
            (r.tlsa_rdata_len && memcmp(c.tlsa_rdata, r.tlsa_rdata, r.tlsa_rdata_len)))
            abort();
        xf_dns_result_free(&c);
    }
    if (qtype == XF_DNS_T_SRV) {
        xf_srv_answer a, none = { XF_SRV_ST_NONE, NULL, 0 };
        xf_srv_target t[2 * XF_DNS_MAX_RECORDS];
        xf_dns_srv_answer(&r, &a);
        int n = xf_srv_order("example.net", &none, &a, zero_rand, NULL, t,
                             sizeof t / sizeof t[0]);
        if (n > (int)r.n_srv && !(n == 1 && t[0].fallback)) abort();
    }
    xf_dns_result_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size, "_xmpp-server._tcp.example.net", XF_DNS_T_SRV);
    check(data, size, "xmpp.example.net", XF_DNS_T_A);
    check(data, size, "xmpp.example.net", XF_DNS_T_AAAA);
    check(data, size, "_5269._tcp.xmpp.example.net", XF_DNS_T_TLSA);
    return 0;
}
