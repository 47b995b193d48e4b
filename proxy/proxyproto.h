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
} xf_pp2_info;

/* Encode a whole PROXY v2 header (command PROXY). Returns its length, or -1 if cap is
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
   family, TLV overrunning the length, bad CRC32C). TLV values point into `in`. */
int xf_pp2_decode(const uint8_t *in, size_t len, xf_pp2_header *out);

#endif
