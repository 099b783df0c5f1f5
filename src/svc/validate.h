/* Input rules shared by the account flows (api-core §13): email syntax and
 * normalisation, and the two password policies. Pure: thread-safe. Lengths
 * are counted in code points; inputs are valid UTF-8 (JSON strings). */
#ifndef AUTHD_SVC_VALIDATE_H
#define AUTHD_SVC_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#define EMAIL_MAX_BYTES 1280 /* 320 code points of up to 4 bytes */

/* §13.2: trims, checks the syntax, lower-cases ASCII letters into out
 * (EMAIL_MAX_BYTES + 1). False → 422. */
bool validate_email(const char *in, char out[EMAIL_MAX_BYTES + 1]);
/* §13.1 new password (signup, reset): 8–64 code points with an uppercase
 * letter (Lu), a digit (Nd) and one of the 32 ASCII punctuation characters. */
bool validate_new_password(const char *pw);
/* §13.1 existing password (login, reauth): 8–256 code points. */
bool validate_login_password(const char *pw);
/* Optional audience (§5.3): NULL or 1–255 code points. */
bool validate_audience(const char *aud);

#endif
