/*
 * proxyproto: PROXY protocol v2 (HAProxy doc/proxy-protocol.txt), sending side plus a
 * strict decoder (for tests, fuzzing and a future inbound PROXY listener).
 */
#ifndef XF_PROXYPROTO_H
#define XF_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define XF_PP2_TYPE_ALPN       0x01
#define XF_PP2_TYPE_AUTHORITY  0x02
#define XF_PP2_TYPE_CRC32C     0x03
#define XF_PP2_TYPE_NOOP       0x04
#define XF_PP2_TYPE_UNIQUE_ID  0x05
#define XF_PP2_TYPE_SSL        0x20
#define XF_PP2_SUBTYPE_SSL_VERSION 0x21
#define XF_PP2_SUBTYPE_SSL_CN      0x22
#define XF_PP2_SUBTYPE_SSL_CIPHER  0x23
#define XF_PP2_SUBTYPE_SSL_SIG_ALG 0x24
#define XF_PP2_SUBTYPE_SSL_KEY_ALG 0x25
#define XF_PP2_CLIENT_SSL       0x01
#define XF_PP2_CLIENT_CERT_CONN 0x02
#define XF_PP2_CLIENT_CERT_SESS 0x04

typedef struct xf_pp2_info {
    const struct sockaddr *src, *dst;  /* NULL or mixed families -> PROXY UNSPEC */
    const char *alpn;                  /* NULL = no TLV */
    const char *authority;             /* SNI; NULL = no TLV */
    int ssl;                           /* 1 = add the SSL TLV */
    int client_cert;                   /* a client certificate was presented */
    uint32_t verify;                   /* 0 only if presented and verified */
    const char *ssl_version, *ssl_cipher, *ssl_sig_alg, *ssl_key_alg, *ssl_cn;
    const char *unique_id;             /* <= 128 bytes */
    int crc32c;                        /* 1 = append a CRC32C TLV (last) */
} xf_pp2_info;

/* Encode a whole PROXY v2 header (command PROXY). Both addresses IPv4 (an IPv4-mapped
   IPv6 address counts as IPv4) -> TCP4; both IPv6 -> TCP6; otherwise UNSPEC. String
   fields are sent without a NUL; NULL fields are left out. Returns its length, or -1 if cap is
   too small or a field is too long. */
int xf_pp2_encode(const xf_pp2_info *in, uint8_t *out, size_t cap);

typedef struct xf_pp2_tlv { uint8_t type; uint16_t len; const uint8_t *value; } xf_pp2_tlv;

typedef struct xf_pp2_header {
    int command;                       /* 0 LOCAL, 1 PROXY */
    int family;                        /* byte 13: 0x00, 0x11, 0x21, 0x31 ... */
    struct sockaddr_storage src, dst;  /* filled for TCP4/TCP6 */
    xf_pp2_tlv tlvs[32];
    int n_tlvs;
    size_t length;                     /* whole header, 16 + len */
} xf_pp2_header;

/* Returns bytes consumed (>0), 0 if incomplete, -1 if invalid (bad signature, version,
   family, TLV overrunning the length, bad CRC32C). TLV values point into `in`.
   LOCAL: the whole header (16 + len) is consumed and nothing after byte 15 is read
   (n_tlvs = 0). PROXY: address block by family (UNIX blocks skipped, not decoded),
   then TLVs; unknown TLV types are kept. Also invalid: more than 32 TLVs, a second
   CRC32C or one whose length is not 4, UNIQUE_ID over 128 bytes, an SSL TLV shorter
   than 5 bytes or with overrunning sub-TLVs. A wrong signature byte is reported as
   soon as it is seen, even before 16 bytes arrived. */
int xf_pp2_decode(const uint8_t *in, size_t len, xf_pp2_header *out);

/* First TLV of `type` in a decoded header, or NULL. */
const xf_pp2_tlv *xf_pp2_find(const xf_pp2_header *h, uint8_t type);
/* Split an SSL TLV into client flags, verify and up to `max` sub-TLVs (values point
   into the header). Returns the number of sub-TLVs, or -1 if malformed/too many. */
int xf_pp2_ssl_parse(const xf_pp2_tlv *ssl, uint8_t *client, uint32_t *verify,
                     xf_pp2_tlv *subs, int max);
/* CRC32C (Castagnoli) continuing from `crc` (0 to start). */
uint32_t xf_crc32c(uint32_t crc, const void *data, size_t len);

#endif
