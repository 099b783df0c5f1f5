/* Password hashing (see password.h): Argon2id through libsodium, bcrypt
 * verification through libcrypt's crypt_r. The context holds only the
 * parameters and a dummy hash computed once; everything else is per call, so
 * the hashing pool's threads share it without locks. */
#include "crypto/password.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/enc.h"
#include "util/mem.h"

#define BCRYPT_HASH_LEN 60
#define BCRYPT_MAX_PW 72

struct password_ctx {
    unsigned long long opslimit;
    size_t memlimit;
    char dummy[crypto_pwhash_STRBYTES]; /* Argon2id hash of a random secret */
};

rc_t password_ctx_new(const struct password_params *p, struct password_ctx **out)
{
    *out = NULL;
    if (p->memory_kib < PASSWORD_MEMORY_KIB_MIN || p->memory_kib > PASSWORD_MEMORY_KIB_MAX ||
        p->iterations < PASSWORD_ITERATIONS_MIN || p->iterations > PASSWORD_ITERATIONS_MAX)
        return RC_INVALID;
    struct password_ctx *c = xcalloc(1, sizeof *c);
    c->opslimit = p->iterations;
    c->memlimit = (size_t)p->memory_kib * 1024u;
    unsigned char secret[32];
    crypto_random(secret, sizeof secret);
    int r = crypto_pwhash_str_alg(c->dummy, (const char *)secret, sizeof secret, c->opslimit,
                                  c->memlimit, crypto_pwhash_ALG_ARGON2ID13);
    sodium_memzero(secret, sizeof secret);
    if (r != 0) {
        password_ctx_free(c);
        return RC_NOMEM;
    }
    *out = c;
    return RC_OK;
}

void password_ctx_free(struct password_ctx *c)
{
    xfree_secret(c, sizeof *c);
}

rc_t password_hash(const struct password_ctx *c, const char *pw, size_t len, char **out)
{
    *out = NULL;
    if (len > crypto_pwhash_PASSWD_MAX)
        return RC_INVALID;
    char h[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str_alg(h, pw, len, c->opslimit, c->memlimit, crypto_pwhash_ALG_ARGON2ID13) !=
        0)
        return RC_NOMEM;
    *out = xstrdup(h);
    return RC_OK;
}

static bool is_b64_bcrypt(char ch)
{
    return ch == '.' || ch == '/' || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (ch >= '0' && ch <= '9');
}

/* "$2x$NN$" + 53 characters of bcrypt's base64, x in {a,b,y}, 4 <= NN <=
 * PASSWORD_BCRYPT_COST_MAX. */
static bool is_bcrypt(const char *s)
{
    if (strlen(s) != BCRYPT_HASH_LEN || s[0] != '$' || s[1] != '2' ||
        (s[2] != 'a' && s[2] != 'b' && s[2] != 'y') || s[3] != '$' || s[6] != '$')
        return false;
    if (s[4] < '0' || s[4] > '9' || s[5] < '0' || s[5] > '9')
        return false;
    int cost = (s[4] - '0') * 10 + (s[5] - '0');
    if (cost < 4 || cost > PASSWORD_BCRYPT_COST_MAX)
        return false;
    for (size_t i = 7; i < BCRYPT_HASH_LEN; i++)
        if (!is_b64_bcrypt(s[i]))
            return false;
    return true;
}

static bool is_argon2(const char *s)
{
    return strncmp(s, "$argon2id$", 10) == 0 || strncmp(s, "$argon2i$", 9) == 0;
}

static bool bcrypt_matches(const char *stored, const char *pw, size_t len)
{
    /* bcrypt reads at most 72 bytes; cut here so every variant agrees. */
    size_t n = len < BCRYPT_MAX_PW ? len : BCRYPT_MAX_PW;
    if (memchr(pw, '\0', n))
        return false;
    char phrase[BCRYPT_MAX_PW + 1];
    memcpy(phrase, pw, n);
    phrase[n] = '\0';
    struct crypt_data *cd = xcalloc(1, sizeof *cd); /* ~32 KiB: not on the stack */
    const char *h = crypt_r(phrase, stored, cd);
    bool ok = h && strlen(h) == BCRYPT_HASH_LEN && crypto_ct_eq(h, stored, BCRYPT_HASH_LEN);
    sodium_memzero(phrase, sizeof phrase);
    xfree_secret(cd, sizeof *cd);
    return ok;
}

rc_t password_verify(const char *stored, const char *pw, size_t len, bool *out_match)
{
    *out_match = false;
    if (!stored)
        return RC_INVALID;
    if (is_bcrypt(stored)) {
        *out_match = bcrypt_matches(stored, pw, len);
        return RC_OK;
    }
    if (!is_argon2(stored) || strlen(stored) >= crypto_pwhash_STRBYTES)
        return RC_INVALID;
    *out_match = crypto_pwhash_str_verify(stored, pw, len) == 0;
    return RC_OK;
}

bool password_needs_rehash(const struct password_ctx *c, const char *stored)
{
    if (!stored || strncmp(stored, "$argon2id$", 10) != 0 ||
        strlen(stored) >= crypto_pwhash_STRBYTES)
        return true;
    return crypto_pwhash_str_needs_rehash(stored, c->opslimit, c->memlimit) != 0;
}

void password_dummy_verify(const struct password_ctx *c, const char *pw, size_t len)
{
    /* Same string format and parameters as a fresh hash, so the same work. */
    int r = crypto_pwhash_str_verify(c->dummy, pw, len);
    (void)r;
}
