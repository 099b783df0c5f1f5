/* Secret chains (see secrets.h). The instance key file is created with
 * O_EXCL so two processes starting at once agree on one key. */
#include "svc/secrets.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/uuid.h"

#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INSTANCE_KEY_BYTES 32

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = b64url[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = b64url[v & 63];
    }
    out[o] = '\0';
}

static rc_t read_instance_key(const char *path, char **out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return RC_IO;
    char line[256] = "";
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    size_t n = strcspn(line, "\r\n");
    line[n] = '\0';
    if (!ok || n < 16)
        return RC_IO;
    *out = xstrdup(line);
    return RC_OK;
}

static rc_t instance_key(const char *data_dir, char **out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/instance.key", data_dir);
    if (read_instance_key(path, out) == RC_OK)
        return RC_OK;
    mkdir(data_dir, 0700);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        if (errno == EEXIST) /* another process won the race */
            return read_instance_key(path, out);
        log_msg(LOG_CRITICAL, "instance_key_failed", "cannot create %s: %s", path, strerror(errno));
        return RC_IO;
    }
    unsigned char raw[INSTANCE_KEY_BYTES];
    rand_bytes(raw, sizeof raw);
    char text[64];
    encode(raw, sizeof raw, text);
    memset(raw, 0, sizeof raw);
    size_t len = strlen(text);
    text[len] = '\n';
    bool ok = write(fd, text, len + 1) == (ssize_t)(len + 1) && fsync(fd) == 0;
    close(fd);
    text[len] = '\0';
    if (!ok) {
        unlink(path);
        return RC_IO;
    }
    *out = xstrdup(text);
    memset(text, 0, sizeof text);
    return RC_OK;
}

static const char *first(const char *a, const char *b, const char *c)
{
    if (a && *a)
        return a;
    if (b && *b)
        return b;
    return c;
}

rc_t secrets_load(const struct config *cfg, const char *data_dir, struct secrets **out)
{
    *out = NULL;
    char *inst = NULL;
    const char *pem = cfg->jwt.private_key_pem;
    bool need_instance = !((cfg->session_security.refresh_token_hash_key || pem) &&
                           (cfg->signing_keys.encryption_key || pem));
    if (need_instance) {
        if (cfg->app.environment == ENV_PRODUCTION)
            return RC_INVALID;
        rc_t rc = instance_key(data_dir ? data_dir : "./data", &inst);
        if (rc)
            return rc;
    }
    struct secrets *s = xcalloc(1, sizeof *s);
    s->refresh_hash_secret =
        xstrdup(first(cfg->session_security.refresh_token_hash_key, pem, inst));
    s->signing_passphrase = xstrdup(first(cfg->signing_keys.encryption_key, pem, inst));
    s->webhook_passphrase =
        xstrdup(first(cfg->webhook.secret_encryption_key, cfg->signing_keys.encryption_key,
                      first(pem, inst, NULL)));
    xfree_secret_str(inst);
    *out = s;
    return RC_OK;
}

void secrets_free(struct secrets *s)
{
    if (!s)
        return;
    xfree_secret_str(s->refresh_hash_secret);
    xfree_secret_str(s->signing_passphrase);
    xfree_secret_str(s->webhook_passphrase);
    free(s);
}
