/*
 * xf_proxy_config.h: xmppfront's settings for an mbedTLS built from Debian's own source
 * package (deploy/build-mbedtls.sh), read as MBEDTLS_USER_CONFIG_FILE after Debian's
 * mbedtls_config.h (debian/rules' scripts/config.py settings: threading with pthreads,
 * CMAC, DTLS-SRTP, deprecation warnings). Everything not named here stays as Debian
 * builds it — session tickets, TLS 1.2 and 1.3, the ciphersuites, the curves.
 *
 * build-mbedtls.sh installs this file next to mbedtls_config.h and defines
 * MBEDTLS_USER_CONFIG_FILE in the installed mbedtls_config.h, so that every program
 * compiled against the prefix (xmppfront, its unit tests, its fuzz targets) sees the same
 * configuration as the library itself; XF_PROXY_MBEDTLS_CONFIG lets CMake verify that.
 *
 * Measured on mbedTLS 3.6.6 (issue 10, tests/bench/README.md "mbedTLS from source"):
 * the heap of one ssl_context after a TLS 1.3 handshake goes from ~42 KB to ~26 KB,
 * with unchanged handshake speed.
 */
#ifndef XF_PROXY_MBEDTLS_CONFIG
#define XF_PROXY_MBEDTLS_CONFIG 1

/* The output record buffer: 4 KiB instead of 16 KiB per connection (RFC 8446 §5.1 lets
 * a sender choose any record size up to 2^14). Consequences the proxy lives with:
 *  - mbedtls_ssl_write() takes at most 4096 bytes per call: every caller loops on
 *    partial writes (proxy/relay.c, remote_connect.c, remote.c, check_tls.c);
 *  - mbedTLS does not fragment outgoing TLS handshake messages: a Certificate message
 *    (the tenant's chain, DER, plus 3 bytes per certificate, 2 more in TLS 1.3, and
 *    the message headers) must fit in 4096 bytes — an ECDSA or RSA-2048 leaf with one
 *    intermediate does (~2-3 KB); docs/build.md says what to do otherwise. */
#undef MBEDTLS_SSL_OUT_CONTENT_LEN
#define MBEDTLS_SSL_OUT_CONTENT_LEN 4096

/* The input buffer stays at the maximum: peers may send full 2^14-byte records, and
 * TLS without the max_fragment_length / record_size_limit extensions (which xmppfront
 * does not negotiate) gives the receiver no say in that. */
#undef MBEDTLS_SSL_IN_CONTENT_LEN
#define MBEDTLS_SSL_IN_CONTENT_LEN 16384

/* PSA for the TLS 1.2 code paths and X.509 too (TLS 1.3 uses it always in 3.6): one
 * implementation of ECDHE and the AEADs instead of two sets of contexts. The proxy calls
 * psa_crypto_init() before any TLS (xf_tls_init, the commands' main functions). */
#define MBEDTLS_USE_PSA_CRYPTO

/* Kept as Debian has it, and required: inbound s2s reads the peer's certificate after
 * the handshake (mbedtls_ssl_get_peer_cert, RFC 6120 §13.7.2 / XEP-0178), which is
 * NULL without it. CMake checks that it is still defined. */
#if !defined(MBEDTLS_SSL_KEEP_PEER_CERTIFICATE)
#error "xmppfront needs MBEDTLS_SSL_KEEP_PEER_CERTIFICATE (mbedtls_ssl_get_peer_cert)"
#endif

#endif /* XF_PROXY_MBEDTLS_CONFIG */
