/* The one route table (conventions: every route declared with its policy in
 * one place per family, so a check cannot be forgotten on one route). The
 * families are concatenated once at start-up. */
#include "api/api.h"
#include "util/mem.h"

#include <pthread.h>
#include <string.h>

typedef size_t (*family_fn)(const struct http_route **out);

static const family_fn families[] = {api_health_routes, api_jwks_routes, api_accounts_routes,
                                     api_auth_routes,   api_self_routes, api_apikeys_routes,
                                     api_clients_routes};

static struct http_route *table;
static size_t n_base, n_all;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build(void)
{
    const struct http_route *parts[sizeof families / sizeof *families + 1];
    size_t counts[sizeof families / sizeof *families + 1], total = 0, nf = 0;
    for (; nf < sizeof families / sizeof *families; nf++) {
        counts[nf] = families[nf](&parts[nf]);
        total += counts[nf];
    }
    counts[nf] = api_test_routes(&parts[nf]);
    n_base = total;
    total += counts[nf];
    nf++;
    table = xcalloc(total ? total : 1, sizeof *table);
    size_t o = 0;
    for (size_t i = 0; i < nf; i++) {
        if (counts[i])
            memcpy(table + o, parts[i], counts[i] * sizeof *table);
        o += counts[i];
    }
    n_all = total;
}

const struct http_route *api_routes(bool test_hooks, size_t *out_n)
{
    pthread_once(&once, build);
    *out_n = test_hooks ? n_all : n_base;
    return table;
}
