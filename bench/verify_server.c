/* Baseline for `make bench`: a minimal libmicrohttpd server that does one
 * bare RS256 verification of a fixed JWT per request (OpenSSL EVP, key
 * parsed once) and answers 204, with authd's threading. It is the ceiling
 * /auth/validate is compared with.
 * usage: verify_server PORT THREADS TOKEN_FILE PUBLIC_PEM_FILE */
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static EVP_PKEY *key;
static char token[16384];
static size_t signed_len;
static unsigned char sig[1024];
static size_t sig_len;

static int b64url_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

static size_t b64url_decode(const char *in, size_t n, unsigned char *out)
{
    size_t o = 0;
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        v = v << 6 | (unsigned)b64url_val(in[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(v >> bits);
        }
    }
    return o;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **state)
{
    (void)cls, (void)url, (void)method, (void)version, (void)data;
    static int marker;
    if (!*state) {
        *state = &marker;
        return MHD_YES;
    }
    *size = 0;
    /* The per-request work of a bare verifier: read the header, verify. */
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    int ok = 0;
    if (auth && strncmp(auth + 7, token, signed_len) == 0) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)token, signed_len) == 1;
        EVP_MD_CTX_free(ctx);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(c, ok ? 204 : 401, r);
    MHD_destroy_response(r);
    return ret;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: verify_server PORT THREADS TOKEN_FILE PUBLIC_PEM_FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[3], "r");
    if (!f || !fgets(token, sizeof token, f))
        return 1;
    fclose(f);
    token[strcspn(token, "\r\n")] = '\0';
    char *dot = strrchr(token, '.');
    signed_len = (size_t)(dot - token);
    sig_len = b64url_decode(dot + 1, strlen(dot + 1), sig);
    f = fopen(argv[4], "r");
    key = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
    if (!key)
        return 1;
    fclose(f);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC,
        (uint16_t)strtol(argv[1], NULL, 10), NULL, NULL, on_request, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)strtol(argv[2], NULL, 10),
        MHD_OPTION_CONNECTION_TIMEOUT, 15u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (!d)
        return 1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sig_no;
    sigwait(&set, &sig_no);
    MHD_stop_daemon(d);
    return 0;
}
