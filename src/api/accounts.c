/* Account lifecycle routes: signup and email verification (api-core §6.2,
 * api-flows §1.1–§1.4). */
#include "api/api.h"

size_t api_accounts_routes(const struct http_route **out)
{
    *out = NULL;
    return 0;
}
