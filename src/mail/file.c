/* File transport (api-flows §7.1, §7.3): the one-box default when no SMTP
 * host is configured. Each message is written to <dir>/<id>.eml with mode
 * 0600: first to a temporary file in the same directory (mkstemp), flushed
 * to disk, then renamed, so a reader sees a whole message or none. The
 * directory is created with mode 0700 on first use. Also home of
 * mail_transport_free. */
#include "mail/transport.h"
#include "util/mem.h"
#include "util/uuid.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct filet {
    struct mail_transport base;
    char *dir;
};

void mail_transport_free(struct mail_transport *t)
{
    if (t)
        t->ops->free(t);
}

/* mkdir -p with mode 0700 for the directories it creates. */
static int mkdirs(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return ENAMETOOLONG;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return errno;
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return errno ? errno : EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static rc_t fail(struct mail_send_result *res, const char *what, int err)
{
    snprintf(res->info, sizeof res->info, "%s: %s", what, strerror(err));
    return RC_IO;
}

static rc_t file_send(struct mail_transport *t, const struct mail_envelope *env, const char *msg,
                      size_t len, const atomic_bool *cancel, struct mail_send_result *res)
{
    (void)cancel; /* a local write is short */
    struct filet *f = (struct filet *)t;
    char canon[UUID_STR_LEN + 1], tmp[PATH_MAX], path[PATH_MAX];
    res->info[0] = '\0';
    res->cancelled = false;
    /* The id names the file: only a canonical uuid can (no path tricks). */
    if (!uuid_parse(env->id, strlen(env->id), canon) || strcmp(canon, env->id) != 0) {
        snprintf(res->info, sizeof res->info, "bad message id");
        return RC_INVALID;
    }
    int err = mkdirs(f->dir);
    if (err)
        return fail(res, "cannot create the mail directory", err);
    if (snprintf(path, sizeof path, "%s/%s.eml", f->dir, canon) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/.%s.eml.XXXXXX", f->dir, canon) >= (int)sizeof tmp)
        return fail(res, "mail path too long", ENAMETOOLONG);
    int fd = mkstemp(tmp); /* mode 0600 */
    if (fd < 0)
        return fail(res, "cannot create a temporary file", errno);
    err = write_all(fd, msg, len);
    if (!err && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        unlink(tmp);
        return fail(res, "cannot write the message file", err);
    }
    size_t n = strlen(path);
    if (n >= sizeof res->info) /* keep the file name, drop the head */
        memcpy(res->info, path + n - (sizeof res->info - 1), sizeof res->info);
    else
        memcpy(res->info, path, n + 1);
    return RC_OK;
}

static void file_free(struct mail_transport *t)
{
    struct filet *f = (struct filet *)t;
    free(f->dir);
    free(f);
}

static const struct mail_transport_ops file_ops = {"file", file_send, file_free};

rc_t mail_file_new(const char *dir, struct mail_transport **out)
{
    *out = NULL;
    if (!dir || !*dir || strlen(dir) > PATH_MAX - 64)
        return RC_INVALID;
    struct filet *f = xcalloc(1, sizeof *f);
    f->base.ops = &file_ops;
    f->dir = xstrdup(dir);
    *out = &f->base;
    return RC_OK;
}
