/* Baseline for the login bench: raw Argon2id verifications per second on N
 * threads at given parameters, through libsodium as authd uses it
 * (crypto_pwhash_str_verify of a stored hash). Prints one number.
 *
 *   argon2_rate THREADS SECONDS MEMORY_KIB ITERATIONS
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

static char stored[crypto_pwhash_STRBYTES];
static double seconds;
static const char pw[] = "B3nch!pass";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
    long *count = arg;
    double end = now() + seconds;
    while (now() < end) {
        if (crypto_pwhash_str_verify(stored, pw, strlen(pw)) != 0)
            abort();
        (*count)++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 5 || sodium_init() < 0) {
        fprintf(stderr, "usage: argon2_rate THREADS SECONDS MEMORY_KIB ITERATIONS\n");
        return 2;
    }
    int n = atoi(argv[1]);
    seconds = atof(argv[2]);
    size_t mem = (size_t)atol(argv[3]) * 1024;
    unsigned long long ops = strtoull(argv[4], NULL, 10);
    if (n < 1 || n > 256 || seconds <= 0 ||
        crypto_pwhash_str_alg(stored, pw, strlen(pw), ops, mem, crypto_pwhash_ALG_ARGON2ID13) != 0)
        return 2;
    pthread_t t[256];
    long counts[256] = {0};
    double t0 = now();
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, run, &counts[i]);
    long total = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        total += counts[i];
    }
    printf("%.1f\n", (double)total / (now() - t0));
    return 0;
}
