/* Unit tests for src/crypto/rsakey and src/crypto/jwt: key generation and
 * parsing, kid and JWK members, RS256 signing, the api-core §5.2
 * verification procedure and its attack set, key-set lifetimes and
 * concurrent use.
 *
 * Fixtures below were produced once with the Python `cryptography` package
 * (key pair, PKCS#1 form, encrypted form, JWK numbers from public_numbers(),
 * kid with hashlib) and PyJWT 2 (PYJWT_TOKEN = jwt.encode(PYJWT_CLAIMS,
 * PRIV_PEM, "RS256", headers={"kid": PUB_KID}), checked with jwt.decode).
 * Because RSASSA-PKCS1-v1_5 is deterministic, signing the same claims here
 * must reproduce PyJWT's token byte for byte, which proves both directions
 * of interoperability. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "crypto/enc.h"
#include "crypto/jwt.h"
#include "crypto/rsakey.h"
#include "util/mem.h"

/* ---- fixtures (Python) -------------------------------------------------- */

static const char PRIV_PEM[] = "-----BEGIN PRIVATE KEY-----\n"
                               "MIIEuwIBADANBgkqhkiG9w0BAQEFAASCBKUwggShAgEAAoIBAQDctP1YjXX1gYMO\n"
                               "r8drgKTOyKigIgSXR0njHcrQUEwUim0DfKyU5BxbkHIVLR2sWNc2ieTHDmxNnQc3\n"
                               "cb+ZCbtYC7LsWXH+P/OqiO12BZMyRBK/o1D9JNmvyoP4wv03Lp0SiIfzYkNri0Lu\n"
                               "0WMcJKbcErERoSnQw+POyDxSbHK3AWS1OKiciy5UovUIoRk2JEOMEyPjkHXE6Ath\n"
                               "4YJho0nxRmrgYX+EUW9CCudjGQquKX2m3bSwQIZRgainjJcjfVxDCQ3esuKXK3Wr\n"
                               "OHIOnVAt0Mz9u1OIhF/kEpL8mVNN2a7OCobAioYKZwdaRKRA0CUAPbfrFil2DfoF\n"
                               "lQ1DK3X7AgMBAAECgf8SLDM2zUafEhGkRZ8Ruvh4r/+DSt369SBc+BBIgon3DBCC\n"
                               "CdYsAIFit9mfa3yg8OWfJXgjcn8aGs0lvNLoLAamChqqrCwAyg1aYmUrCIBgWRIk\n"
                               "p+jUF5m6DuwEzD9DKjvSKShm2yL1YGBsmnK918AAbGEoC7gOIOqaS05Aba2LIH9O\n"
                               "sm0cIOEV3fmeGgIyvXPKc5xU8eJPDd6cl6f4ZlyKuA/RneW6dsqtJAIl+dao8onZ\n"
                               "yxJ5SJRi/z3hv/0gmHfr1nWe55C/nBhEFQ8T3NBla/mUAGC1/4qVXbpZ9RybTBZn\n"
                               "Dac3iYNrmK9Bi6k11u0Z/QLCh/t2MIXnaqPCI7UCgYEA8MOv2i65o+Cp1Hkmzlno\n"
                               "gnbhq+aQuK8Cc5cUVtDmaW8IpiHTbHFLs/fKHquIYvm+KUb2T/wBiLgTuw71d+MV\n"
                               "XWHZKZsuHfZr6fcUGUCPPPdCxYxoWR1uGP9fDUhdmitbC3qt26AS5l0pyg5fkaMS\n"
                               "qGAktPLnbzS2+3SLEc3oG+UCgYEA6qxg5Tqocc2qaPnusVOe64jG9aov7w76Hj9H\n"
                               "M27RxrCQkIKJ2dQlcqJTUI2RdDJihxXh8ADJDHiJxYTgSLEo1HzzBLp2rqJ0vsBf\n"
                               "rsDyTrZoSKRtZr1zu4O1LHNXBGvUfWx/d5WvohxnwDT3BPZDVv0uVuLmHRk4f4Ic\n"
                               "oM3q7F8CgYEA4H9HWOVaukEBepphIeZZ1FTvhm9eIKcnXQrRr0XoowUihm5iCur1\n"
                               "kOELOV/us4N12l1NzTUJZSdnVnPTVS+MO1/Cs3X8IXomE6oMtqMpLMrOGxAaOIYl\n"
                               "o+9y/RquFNQ6d9CzjmeLV/wkvEB8wnrRKelEMOmR/XKk8IEyL67UsDUCgYAIHwcL\n"
                               "Z8hEh/WJxHx6LoalaApanhUilMYbHd187izcT2fxWFMk8q6JFQ0FEKEkAEpgmmVD\n"
                               "RQOwJsu9xids3JSpJdnTJBDPYlff8hBdn9fC2ZUqTmZq08uZhalTbHpqcMDdxk9y\n"
                               "9/8oAQumHy8dQNh7vi9IWnnUL/dAkmQjPH0QyQKBgEHM2fDT2bXiR46Tw+Zckj4j\n"
                               "sFjsmx2Q8Pdj0L9Iwl1y7sAiY0kh7CYIlVgA73yoNA0+QUwefErL62tqF+2k2jR9\n"
                               "Xc6nk6QvqmgFT/gHAeSBl2WW4rgmN+Vo4mwtk7F0XcYU8UyDeEjnO1aytdxzqAmt\n"
                               "if00nCzQkd2n9Qy/ATUV\n"
                               "-----END PRIVATE KEY-----\n";

static const char PRIV_PEM_PKCS1[] =
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEoQIBAAKCAQEA3LT9WI119YGDDq/Ha4CkzsiooCIEl0dJ4x3K0FBMFIptA3ys\n"
    "lOQcW5ByFS0drFjXNonkxw5sTZ0HN3G/mQm7WAuy7Flx/j/zqojtdgWTMkQSv6NQ\n"
    "/STZr8qD+ML9Ny6dEoiH82JDa4tC7tFjHCSm3BKxEaEp0MPjzsg8UmxytwFktTio\n"
    "nIsuVKL1CKEZNiRDjBMj45B1xOgLYeGCYaNJ8UZq4GF/hFFvQgrnYxkKril9pt20\n"
    "sECGUYGop4yXI31cQwkN3rLilyt1qzhyDp1QLdDM/btTiIRf5BKS/JlTTdmuzgqG\n"
    "wIqGCmcHWkSkQNAlAD236xYpdg36BZUNQyt1+wIDAQABAoH/EiwzNs1GnxIRpEWf\n"
    "Ebr4eK//g0rd+vUgXPgQSIKJ9wwQggnWLACBYrfZn2t8oPDlnyV4I3J/GhrNJbzS\n"
    "6CwGpgoaqqwsAMoNWmJlKwiAYFkSJKfo1BeZug7sBMw/Qyo70ikoZtsi9WBgbJpy\n"
    "vdfAAGxhKAu4DiDqmktOQG2tiyB/TrJtHCDhFd35nhoCMr1zynOcVPHiTw3enJen\n"
    "+GZcirgP0Z3lunbKrSQCJfnWqPKJ2csSeUiUYv894b/9IJh369Z1nueQv5wYRBUP\n"
    "E9zQZWv5lABgtf+KlV26WfUcm0wWZw2nN4mDa5ivQYupNdbtGf0Cwof7djCF52qj\n"
    "wiO1AoGBAPDDr9ouuaPgqdR5Js5Z6IJ24avmkLivAnOXFFbQ5mlvCKYh02xxS7P3\n"
    "yh6riGL5vilG9k/8AYi4E7sO9XfjFV1h2SmbLh32a+n3FBlAjzz3QsWMaFkdbhj/\n"
    "Xw1IXZorWwt6rdugEuZdKcoOX5GjEqhgJLTy5280tvt0ixHN6BvlAoGBAOqsYOU6\n"
    "qHHNqmj57rFTnuuIxvWqL+8O+h4/RzNu0cawkJCCidnUJXKiU1CNkXQyYocV4fAA\n"
    "yQx4icWE4EixKNR88wS6dq6idL7AX67A8k62aEikbWa9c7uDtSxzVwRr1H1sf3eV\n"
    "r6IcZ8A09wT2Q1b9Llbi5h0ZOH+CHKDN6uxfAoGBAOB/R1jlWrpBAXqaYSHmWdRU\n"
    "74ZvXiCnJ10K0a9F6KMFIoZuYgrq9ZDhCzlf7rODddpdTc01CWUnZ1Zz01UvjDtf\n"
    "wrN1/CF6JhOqDLajKSzKzhsQGjiGJaPvcv0arhTUOnfQs45ni1f8JLxAfMJ60Snp\n"
    "RDDpkf1ypPCBMi+u1LA1AoGACB8HC2fIRIf1icR8ei6GpWgKWp4VIpTGGx3dfO4s\n"
    "3E9n8VhTJPKuiRUNBRChJABKYJplQ0UDsCbLvcYnbNyUqSXZ0yQQz2JX3/IQXZ/X\n"
    "wtmVKk5matPLmYWpU2x6anDA3cZPcvf/KAELph8vHUDYe74vSFp51C/3QJJkIzx9\n"
    "EMkCgYBBzNnw09m14keOk8PmXJI+I7BY7JsdkPD3Y9C/SMJdcu7AImNJIewmCJVY\n"
    "AO98qDQNPkFMHnxKy+trahftpNo0fV3Op5OkL6poBU/4BwHkgZdlluK4JjflaOJs\n"
    "LZOxdF3GFPFMg3hI5ztWsrXcc6gJrYn9NJws0JHdp/UMvwE1FQ==\n"
    "-----END RSA PRIVATE KEY-----\n";

static const char PUB_PEM[] = "-----BEGIN PUBLIC KEY-----\n"
                              "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA3LT9WI119YGDDq/Ha4Ck\n"
                              "zsiooCIEl0dJ4x3K0FBMFIptA3yslOQcW5ByFS0drFjXNonkxw5sTZ0HN3G/mQm7\n"
                              "WAuy7Flx/j/zqojtdgWTMkQSv6NQ/STZr8qD+ML9Ny6dEoiH82JDa4tC7tFjHCSm\n"
                              "3BKxEaEp0MPjzsg8UmxytwFktTionIsuVKL1CKEZNiRDjBMj45B1xOgLYeGCYaNJ\n"
                              "8UZq4GF/hFFvQgrnYxkKril9pt20sECGUYGop4yXI31cQwkN3rLilyt1qzhyDp1Q\n"
                              "LdDM/btTiIRf5BKS/JlTTdmuzgqGwIqGCmcHWkSkQNAlAD236xYpdg36BZUNQyt1\n"
                              "+wIDAQAB\n"
                              "-----END PUBLIC KEY-----\n";

static const char PUB_KID[] = "oQhXn0Du27BhqWZKnPLgeA";

static const char PUB_N[] =
    "3LT9WI119YGDDq_Ha4CkzsiooCIEl0dJ4x3K0FBMFIptA3yslOQcW5ByFS0drFjXNonkxw5sTZ0HN3G_mQm7WAuy7Flx_"
    "j_zqojtdgWTMkQSv6NQ_STZr8qD-"
    "ML9Ny6dEoiH82JDa4tC7tFjHCSm3BKxEaEp0MPjzsg8UmxytwFktTionIsuVKL1CKEZNiRDjBMj45B1xOgLYeGCYaNJ8UZ"
    "q4GF_hFFvQgrnYxkKril9pt20sECGUYGop4yXI31cQwkN3rLilyt1qzhyDp1QLdDM_btTiIRf5BKS_"
    "JlTTdmuzgqGwIqGCmcHWkSkQNAlAD236xYpdg36BZUNQyt1-w";

static const char PUB_E[] = "AQAB";

static const char PRIV_PEM_ENCRYPTED[] =
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    "MIIFJTBfBgkqhkiG9w0BBQ0wUjAxBgkqhkiG9w0BBQwwJAQQQJfhXSACScgsEbFB\n"
    "CdaQ1wICCAAwDAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEBizYms70zQbo86L\n"
    "A+nCJUAEggTA1L+9TKNIzzvl8Ijv6VK1cfZ8we3l0nnGjuhdEPuENjUgQqzZpHL4\n"
    "VKyzxWXDvoAimmio8LcMAhGfDn/iR8bSGFPrcuGdtZ1MSCIodY1O0cM0KO8ww7ST\n"
    "3/yGjrPDD9u3IGz2PvThAswDUwIPw4PKq+mBlwSaqOopO+tmJWx1XrikEtKRVBJA\n"
    "INk15kzdzJryInK2H/BftPtbtQL7xweJYpzixS4MABkNt2M5p34Lwlh+Lhu5cFv8\n"
    "S7zPcGaaGppKmb+D7u8ZzfS0JtzrGaUKZTaCcwl3xKv6k97Yb5UvrLXQkoo0jWll\n"
    "VUDD6MWD9d7Hu57NhSKjHoc3r6UC+DtBzteZ4J+M9IjJAKjRwzQ49HOfSOjv4Kqd\n"
    "KFB8joWmJNf3m8F509y5TQLoqx5Kw+0lhHBDLM8wWh8Gf5Uu0m88ZC4atqSEap9v\n"
    "odsQsybXXTkwHnlDo4ClvHpCX85aH1eLQURhed+OgpaTsHZ/51xVaiQi4S8jUrVT\n"
    "1UwNKNXhBIOwmyrxKoeENdksOwJDeVFRD8vZwFRbfU7P2ytC0t/gsnxbUmFo2opj\n"
    "HcG0p8+yCQWi/7xxy/+/zygMfBXMhK9Kjs6zy35LAx+6YJ/1wQ1nh0bH0U4o6Vh1\n"
    "63hACLYcUHN5pmTwkk87z7bjteEwQuq0OYM3MqDoFOzvQDEWdXMjbN3gnyA1YFqk\n"
    "vLJn2DutTKsaf1guox9CTOoRdq+8jaBWiSru24Mpow+zRaMoe7sFCIZgKh67PPqQ\n"
    "/qb9h4zTqFpIrN00O6bacNNScVF6d09nBQNisIm5FV7qZIBU7JGxn5/4f8AHKOf0\n"
    "IlSdiZgu7d52fbmbthLKkWhjpwDXv/kWnWpZiZDfgHaGaJlIpjBSoMqTi3aUkNTp\n"
    "uxUF7QHp4HOkVCs0RDqj6rAg44jiAc+X6sOyeO+sIf/DUfdn1uUwSnTdDM/oycH9\n"
    "7oaKX5NW03BpzfqVrvGzLWWq+Xkq2c815uni0pcfKJBnO61+i09MCk6Fub0gutBO\n"
    "Iqv2Jvjb23xBffBM2ETWUVt0BVeX9RYu7z0cfsj5rhJQUBz1RsG1WGjAem7ZjqL6\n"
    "WOfQBreJeHAEkAeWAcoXFCVSpZvQWUnSEswhSAf5AcPNbIsVojw3irWj3Xy2+43C\n"
    "sJxsz6LIoC8BJLhAzi+wnJ7l/PcgjYq674Zm1gtVkYO53FaPnrVsk3NrRP7P7g7C\n"
    "itxeTx84aEk1gfRNexKzTT+elUamuLMLcxtZJbnv0xn8dG488a85lDgXVNOIbD8D\n"
    "E9LBHYXasLNMQRU7LAQQ6FzbT3eg+az9H2p4IwUuucWfrncCwr22rJO+IYd0ab9K\n"
    "gdx4s8V1mMsvfcB7G9XEp2jITnZPyMoauCCLl/wRJ3Zb0fCZidpLKYskEtyAdNQx\n"
    "wUqzjrXefhqgP51o1CosyC0B7ASNY/BF5vhMWnTB6AbnFomPxQ02Gf/0Wo9mo4KT\n"
    "W4Cp4LHjoD/d0E1EPHSwHW0jQwNDSgpkLnve6jt0VaxYzm+gSpSgDLKglVwKRuce\n"
    "FdijYbDoi4lH5WPYbW7irAp5quRqEEW9/JgBxgcPW2tJslustORlyFHxKE0WC+rv\n"
    "5MuWmSv7cjH9W4WX3Qd1nFSV41iQ9/DN6g==\n"
    "-----END ENCRYPTED PRIVATE KEY-----\n";

static const char PUB2_PEM[] = "-----BEGIN PUBLIC KEY-----\n"
                               "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAyjCxHbJCSkDy63ph/sX0\n"
                               "4EBvx0BJFKL64seTsmNtGFzjzF7vxpc4W564EdSje2usPImxPX1nanhrWYP8K/RP\n"
                               "O6NAIjzjJjhC+I1dApfcCqswA5bPDtpuQw4efGCR43ddY83uIlBDnVoCTI7FQwpj\n"
                               "ksD2Ywl+pIiNztGzFtNWcwUL+c/xO4JGOBGH5HoVS8qpOR/yVNmgLWH7CDowufbu\n"
                               "J0eh3WusIn+dGXLiQiO0ynb/5XynDLAmNtKJE5tgGIMPi6TQlDGBoSsPmtpr338t\n"
                               "kLlRG3Q89QLmTGsSfOfJM1bQpjTYsjvk2iGjNP4BN4MwEuQV78nvRtxYmiUol3Kq\n"
                               "FwIDAQAB\n"
                               "-----END PUBLIC KEY-----\n";

static const char PUB1024_PEM[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDMiucTalCceWfHYSOcw91EidFN\n"
    "KUwMRbEld5bsbF20ACM9b8VMIcDlhNfGwUNb5rkciooBWnbxUbMPb/QoFBRQqIaI\n"
    "QKpSjJsAS3wf6LnvKb7uh6nXdKN0vgwooDhuzeKROizw0CQCOWXV77d+zFYUVY0h\n"
    "ZYg6VzuPhFDc2NuF7QIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static const char EC_PUB_PEM[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEwQN5Vp1bjTCoTo49cSZ25MoSPZX9\n"
    "Ws+kixSNsxacAgFjo2IpfU8mkQjC8CWsAKZlDbjUMz1dqch96pPzlvqW3w==\n"
    "-----END PUBLIC KEY-----\n";

static const char EC_PRIV_PEM[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgev9GjWnXRiXY8pd1\n"
    "ja/TlNrNbHDlx2OHvmiRqct4u4ihRANCAATBA3lWnVuNMKhOjj1xJnbkyhI9lf1a\n"
    "z6SLFI2zFpwCAWOjYil9TyaRCMLwJawApmUNuNQzPV2pyH3qk/OW+pbf\n"
    "-----END PRIVATE KEY-----\n";

static const char PYJWT_TOKEN[] =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6Im9RaFhuMER1MjdCaHFXWktuUExnZUEiLCJ0eXAiOiJKV1QifQ."
    "eyJqdGkiOiIwYjViOGY2ZS00YTdlLTRkMWItOWE1Ny0zZjFkMmMwZTlhMTEiLCJpYXQiOjE3NjcyMjU2MDAsImV4cCI6MT"
    "c2NzIyNjUwMCwic3ViIjoiNmYxYzJiOWEtOGQzZS00YzU1LWIxYTItMGU5ZDhjN2I2YTUwIiwidHlwZSI6ImFjY2VzcyIs"
    "ImF1ZCI6WyJhdXRoLXNlcnZpY2UiLCJvcmRlcnMtYXBpIl0sInJvbGUiOiJ1c2VyIiwiZW1haWwiOiJhQGV4YW1wbGUuY2"
    "9tIiwiZW1haWxfdmVyaWZpZWQiOnRydWUsImVtYWlsX290cF9lbmFibGVkIjpmYWxzZSwiYXV0aF90aW1lIjoxNzY3MjI1"
    "NjAwLCJzY29wZXMiOltdfQ.JiLL1wDxKQs4ncUTzUErJTR1aKKTymt_5CLFggFbbXlpxqvs-X5-"
    "KtXL97UlKBG67OVszV0TwvWzRFQvR7JXV6zJxHzzyebQq3kA5uNZ-"
    "UuY3IgjCvRyFHwn18exiFiVYdzlfQSncTF7Ob20iinCGDRKL4M9anDeZ562NJxGvf2bZCNnx-"
    "XLqiEA4j66MsQmFyB0CzbLUZk8AHjbjy3Pdk55TjkVisFaZ8rPBe6HQGFX94GPeyCngRfFHqSeswAqEJxN1f1gt7JvQKqG"
    "b4wgQ0eyTMKt6uPXH4AsT5FnbUnI41i1I9EqQf3ZjwZZ3RZJ-WxyHyzqgCixFOeack92Og";

static const char PYJWT_CLAIMS[] =
    "{\"jti\":\"0b5b8f6e-4a7e-4d1b-9a57-3f1d2c0e9a11\",\"iat\":1767225600,\"exp\":1767226500,"
    "\"sub\":\"6f1c2b9a-8d3e-4c55-b1a2-0e9d8c7b6a50\",\"type\":\"access\",\"aud\":[\"auth-"
    "service\",\"orders-api\"],\"role\":\"user\",\"email\":\"a@example.com\",\"email_verified\":"
    "true,\"email_otp_enabled\":false,\"auth_time\":1767225600,\"scopes\":[]}";

/* ---- shared state --------------------------------------------------------- */

static EVP_PKEY *fix_priv;         /* PRIV_PEM */
static EVP_PKEY *other_priv;       /* a generated key, not in any set */
static struct jwt_keyset *fix_set; /* {PUB_KID: PUB_PEM, "other": PUB2_PEM} */

static const char *const SERVICE_AUD[] = {"auth-service"};

static int setup(void **st)
{
    (void)st;
    assert_int_equal(rsakey_parse_private(PRIV_PEM, strlen(PRIV_PEM), &fix_priv), RC_OK);
    char *priv = NULL, *pub = NULL;
    assert_int_equal(rsakey_generate(&priv, &pub), RC_OK);
    assert_int_equal(rsakey_parse_private(priv, strlen(priv), &other_priv), RC_OK);
    xfree_secret_str(priv);
    free(pub);
    struct jwt_key_input in[] = {
        {PUB_KID, PUB_PEM, strlen(PUB_PEM)},
        {"other", PUB2_PEM, strlen(PUB2_PEM)},
    };
    assert_int_equal(jwt_keyset_new(in, 2, &fix_set), RC_OK);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    EVP_PKEY_free(fix_priv);
    EVP_PKEY_free(other_priv);
    jwt_keyset_unref(fix_set);
    return 0;
}

/* ---- rsakey --------------------------------------------------------------- */

/* Checks the canonical SubjectPublicKeyInfo PEM layout of config-ops §5.3. */
static void assert_spki_layout(const char *pem)
{
    const char *begin = "-----BEGIN PUBLIC KEY-----\n", *end = "-----END PUBLIC KEY-----\n";
    size_t n = strlen(pem);
    assert_true(strncmp(pem, begin, strlen(begin)) == 0);
    assert_true(n > strlen(end) && strcmp(pem + n - strlen(end), end) == 0);
    const char *p = pem + strlen(begin);
    const char *stop = pem + n - strlen(end);
    int lines = 0;
    while (p < stop) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        size_t len = (size_t)(nl - p);
        if (nl + 1 < stop)
            assert_int_equal(len, 64);
        else
            assert_true(len > 0 && len <= 64);
        p = nl + 1;
        lines++;
    }
    assert_true(lines >= 5);
}

static void test_rsakey_generate(void **st)
{
    (void)st;
    char *priv = NULL, *pub = NULL;
    assert_int_equal(rsakey_generate(&priv, &pub), RC_OK);
    assert_true(strncmp(priv, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
    assert_non_null(strstr(priv, "-----END PRIVATE KEY-----\n"));
    assert_spki_layout(pub);
    EVP_PKEY *k = NULL, *p = NULL;
    assert_int_equal(rsakey_parse_private(priv, strlen(priv), &k), RC_OK);
    assert_int_equal(rsakey_parse_public(pub, strlen(pub), &p), RC_OK);
    assert_int_equal(EVP_PKEY_get_bits(k), 2048);
    assert_int_equal(rsakey_check_pair(priv, strlen(priv), pub, strlen(pub)), RC_OK);
    char *n = NULL, *e = NULL;
    assert_int_equal(rsakey_jwk_params(p, &n, &e), RC_OK);
    assert_string_equal(e, "AQAB");
    assert_int_equal(strlen(n), 342); /* 256 bytes, top bit set */
    char *again = NULL;
    assert_int_equal(rsakey_public_pem(k, &again), RC_OK);
    assert_string_equal(again, pub);
    char kid[RSAKEY_KID_LEN + 1];
    rsakey_kid(pub, strlen(pub), kid);
    assert_int_equal(strlen(kid), 22);
    assert_int_equal(
        strspn(kid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 22);
    /* two generations differ */
    char *priv2 = NULL, *pub2 = NULL;
    assert_int_equal(rsakey_generate(&priv2, &pub2), RC_OK);
    assert_string_not_equal(pub, pub2);
    assert_int_equal(rsakey_check_pair(priv, strlen(priv), pub2, strlen(pub2)), RC_CONFLICT);
    EVP_PKEY_free(k);
    EVP_PKEY_free(p);
    free(n);
    free(e);
    free(again);
    xfree_secret_str(priv);
    xfree_secret_str(priv2);
    free(pub);
    free(pub2);
}

static void test_rsakey_fixture(void **st)
{
    (void)st;
    char kid[RSAKEY_KID_LEN + 1];
    rsakey_kid(PUB_PEM, strlen(PUB_PEM), kid);
    assert_string_equal(kid, PUB_KID);
    /* the exact text counts: no trimming, no re-encoding */
    char trimmed[1024];
    size_t n = strlen(PUB_PEM);
    memcpy(trimmed, PUB_PEM, n - 1);
    trimmed[n - 1] = '\0';
    rsakey_kid(trimmed, n - 1, kid);
    assert_string_not_equal(kid, PUB_KID);

    EVP_PKEY *pub = NULL;
    assert_int_equal(rsakey_parse_public(PUB_PEM, strlen(PUB_PEM), &pub), RC_OK);
    char *jn = NULL, *je = NULL;
    assert_int_equal(rsakey_jwk_params(pub, &jn, &je), RC_OK);
    assert_string_equal(jn, PUB_N);
    assert_string_equal(je, PUB_E);
    free(jn);
    free(je);
    /* the private key yields the same members and the same canonical PEM */
    assert_int_equal(rsakey_jwk_params(fix_priv, &jn, &je), RC_OK);
    assert_string_equal(jn, PUB_N);
    char *pem = NULL;
    assert_int_equal(rsakey_public_pem(fix_priv, &pem), RC_OK);
    assert_string_equal(pem, PUB_PEM);
    free(pem);
    free(jn);
    free(je);
    EVP_PKEY_free(pub);

    /* a PKCS#1 key re-encodes to the PKCS#8 text Python wrote */
    EVP_PKEY *k1 = NULL;
    assert_int_equal(rsakey_parse_private(PRIV_PEM_PKCS1, strlen(PRIV_PEM_PKCS1), &k1), RC_OK);
    assert_int_equal(rsakey_private_pem(k1, &pem), RC_OK);
    assert_string_equal(pem, PRIV_PEM);
    xfree_secret_str(pem);
    EVP_PKEY_free(k1);
    assert_int_equal(rsakey_parse_public(PUB_PEM, strlen(PUB_PEM), &pub), RC_OK);
    assert_int_equal(rsakey_private_pem(pub, &pem), RC_CRYPTO); /* no private half */
    assert_null(pem);
    EVP_PKEY_free(pub);

    /* PKCS#1 and PKCS#8 forms of one key both parse and match */
    assert_int_equal(rsakey_check_pair(PRIV_PEM, strlen(PRIV_PEM), PUB_PEM, strlen(PUB_PEM)),
                     RC_OK);
    assert_int_equal(
        rsakey_check_pair(PRIV_PEM_PKCS1, strlen(PRIV_PEM_PKCS1), PUB_PEM, strlen(PUB_PEM)), RC_OK);
    assert_int_equal(rsakey_check_pair(PRIV_PEM, strlen(PRIV_PEM), PUB2_PEM, strlen(PUB2_PEM)),
                     RC_CONFLICT);
    assert_int_equal(rsakey_check_pair("garbage", 7, PUB_PEM, strlen(PUB_PEM)), RC_INVALID);
    assert_int_equal(rsakey_check_pair(PRIV_PEM, strlen(PRIV_PEM), "garbage", 7), RC_INVALID);
}

struct pem_case {
    const char *name;
    const char *pem;
    bool private;
    rc_t want;
};

static void test_rsakey_hostile(void **st)
{
    (void)st;
    char truncated[800];
    memcpy(truncated, PUB_PEM, 200);
    truncated[200] = '\0';
    char corrupted[1024];
    memcpy(corrupted, PUB_PEM, strlen(PUB_PEM) + 1);
    corrupted[100] = corrupted[100] == 'A' ? 'B' : 'A'; /* inside the modulus: still DER? */
    char noise_around[1200];
    snprintf(noise_around, sizeof noise_around, "leading text\n%strailing text\n", PUB_PEM);
    const struct pem_case cases[] = {
        {"empty", "", false, RC_INVALID},
        {"garbage", "not a pem at all", false, RC_INVALID},
        {"truncated", truncated, false, RC_INVALID},
        {"private as public", PRIV_PEM, false, RC_INVALID},
        {"public as private", PUB_PEM, true, RC_INVALID},
        {"encrypted private", PRIV_PEM_ENCRYPTED, true, RC_INVALID},
        {"EC public", EC_PUB_PEM, false, RC_INVALID},
        {"EC private", EC_PRIV_PEM, true, RC_INVALID},
        {"RSA-1024 public", PUB1024_PEM, false, RC_INVALID},
        {"label only", "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n", false, RC_INVALID},
        {"bad base64", "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n", false,
         RC_INVALID},
        {"noise around", noise_around, false, RC_OK},
        {"pkcs1 private", PRIV_PEM_PKCS1, true, RC_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        EVP_PKEY *k = (EVP_PKEY *)1;
        rc_t rc = cases[i].private ? rsakey_parse_private(cases[i].pem, strlen(cases[i].pem), &k)
                                   : rsakey_parse_public(cases[i].pem, strlen(cases[i].pem), &k);
        if (rc != cases[i].want)
            fail_msg("%s: rc %d, want %d", cases[i].name, rc, cases[i].want);
        if (rc)
            assert_null(k);
        EVP_PKEY_free(k);
    }
    /* a corrupted body either fails or is a different key: never PUB_KID's */
    EVP_PKEY *k = NULL;
    if (rsakey_parse_public(corrupted, strlen(corrupted), &k) == RC_OK) {
        EVP_PKEY *orig = NULL;
        assert_int_equal(rsakey_parse_public(PUB_PEM, strlen(PUB_PEM), &orig), RC_OK);
        assert_int_not_equal(EVP_PKEY_eq(k, orig), 1);
        EVP_PKEY_free(orig);
        EVP_PKEY_free(k);
    }
    char *huge = xmalloc(RSAKEY_PEM_MAX + 2);
    memset(huge, 'A', RSAKEY_PEM_MAX + 1);
    huge[RSAKEY_PEM_MAX + 1] = '\0';
    assert_int_equal(rsakey_parse_public(huge, strlen(huge), &k), RC_LIMIT);
    assert_int_equal(rsakey_parse_private(NULL, 0, &k), RC_INVALID);
    free(huge);
}

/* ---- token construction for the attack set --------------------------------- */

enum sigmode {
    SIG_RS256,     /* correct key */
    SIG_RS512,     /* correct key, SHA-512 */
    SIG_HS256_PUB, /* HMAC-SHA256 keyed with the public key PEM text */
    SIG_OTHER_KEY, /* RS256 with a key outside the set */
    SIG_EMPTY,     /* "h.p." */
    SIG_JUNK,      /* "h.p.AAAA" */
};

static size_t rsa_sign(EVP_PKEY *k, const char *md, const char *input, unsigned char *sig)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    size_t n = 1024;
    assert_int_equal(EVP_DigestSignInit_ex(c, NULL, md, NULL, NULL, k, NULL), 1);
    assert_int_equal(EVP_DigestSign(c, sig, &n, (const unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(c);
    return n;
}

/* b64url(header) "." b64url(payload) "." signature, as a new string. pad
 * adds '=' padding to the first two segments (still signed as written). */
static char *make_token_ex(const char *hdr, const char *payload, enum sigmode m, bool pad)
{
    enum crypto_b64 v = pad ? CRYPTO_B64_URL_PAD : CRYPTO_B64_URL;
    char *h = crypto_b64_encode_new(v, hdr, strlen(hdr));
    char *p = crypto_b64_encode_new(v, payload, strlen(payload));
    size_t in_len = strlen(h) + 1 + strlen(p);
    char *tok = xmalloc(in_len + 1 + 1400);
    snprintf(tok, in_len + 1, "%s.%s", h, p);
    unsigned char sig[1024];
    size_t n = 0;
    switch (m) {
    case SIG_RS256:
        n = rsa_sign(fix_priv, "SHA256", tok, sig);
        break;
    case SIG_RS512:
        n = rsa_sign(fix_priv, "SHA512", tok, sig);
        break;
    case SIG_OTHER_KEY:
        n = rsa_sign(other_priv, "SHA256", tok, sig);
        break;
    case SIG_HS256_PUB:
        crypto_hmac_sha256(PUB_PEM, strlen(PUB_PEM), tok, strlen(tok), sig);
        n = 32;
        break;
    case SIG_EMPTY:
        break;
    case SIG_JUNK:
        memset(sig, 0, 3);
        n = 3;
        break;
    }
    tok[in_len] = '.';
    crypto_b64_encode(CRYPTO_B64_URL, sig, n, tok + in_len + 1);
    free(h);
    free(p);
    return tok;
}

static char *make_token(const char *hdr, const char *payload, enum sigmode m)
{
    return make_token_ex(hdr, payload, m, false);
}

#define NOW 1800000000
#define HDR "{\"alg\":\"RS256\",\"kid\":\"%s\",\"typ\":\"JWT\"}"
#define HDR_OTHER "{\"alg\":\"RS256\",\"kid\":\"other\",\"typ\":\"JWT\"}"
#define PL(extra) "{\"jti\":\"j1\",\"iat\":1800000000,\"exp\":1800000900,\"sub\":\"u1\"" extra "}"
#define PL_OK PL(",\"type\":\"access\",\"aud\":\"auth-service\"")
#define TA ",\"type\":\"access\""
#define AUD ",\"aud\":\"auth-service\""

static const char *want_detail(enum jwt_reason r)
{
    switch (r) {
    case JWT_BAD_ALG:
        return "Invalid token algorithm.";
    case JWT_BAD_TYPE:
        return "Invalid token type.";
    case JWT_EXPIRED:
        return "Token has expired.";
    default:
        return "Invalid token.";
    }
}

static void expect_verify(const char *name, const char *tok, size_t len, const char *type,
                          const char *const *auds, int n_auds, enum jwt_reason want)
{
    json_t *claims = (json_t *)1;
    struct jwt_error err = {.reason = (enum jwt_reason)99};
    rc_t rc = jwt_verify(fix_set, tok, len, type, auds, n_auds, NOW, &claims, &err);
    if (err.reason != want)
        fail_msg("%s: reason %s, want %s", name, jwt_reason_str(err.reason), jwt_reason_str(want));
    if (want == JWT_OK) {
        assert_int_equal(rc, RC_OK);
        assert_non_null(claims);
        assert_true(json_is_object(claims));
        json_decref(claims);
        assert_null(err.code);
        return;
    }
    assert_int_equal(rc, RC_INVALID);
    assert_null(claims);
    assert_string_equal(err.code, want == JWT_EXPIRED ? "token_expired" : "invalid_token");
    assert_string_equal(err.detail, want_detail(want));
}

struct vcase {
    const char *name;
    const char *hdr; /* may contain one %s for PUB_KID */
    const char *payload;
    enum sigmode sig;
    const char *type; /* expected type; NULL = any */
    const char *aud2; /* expected {SERVICE_AUD, aud2} when set, else {SERVICE_AUD} */
    enum jwt_reason want;
};

static const struct vcase vcases[] = {
    {"valid", HDR, PL_OK, SIG_RS256, "access", NULL, JWT_OK},
    {"kid other, signed by a stranger", HDR_OTHER, PL_OK, SIG_OTHER_KEY, "access", NULL,
     JWT_BAD_SIGNATURE},
    /* step 2: algorithm */
    {"alg none with a signature", "{\"alg\":\"none\",\"kid\":\"%s\"}", PL_OK, SIG_JUNK, "access",
     NULL, JWT_BAD_ALG},
    {"alg none, empty signature", "{\"alg\":\"none\",\"kid\":\"%s\"}", PL_OK, SIG_EMPTY, "access",
     NULL, JWT_MALFORMED},
    {"alg None", "{\"alg\":\"None\",\"kid\":\"%s\"}", PL_OK, SIG_RS256, "access", NULL,
     JWT_BAD_ALG},
    {"HS256 keyed with the public PEM", "{\"alg\":\"HS256\",\"kid\":\"%s\",\"typ\":\"JWT\"}", PL_OK,
     SIG_HS256_PUB, "access", NULL, JWT_BAD_ALG},
    {"RS512", "{\"alg\":\"RS512\",\"kid\":\"%s\",\"typ\":\"JWT\"}", PL_OK, SIG_RS512, "access",
     NULL, JWT_BAD_ALG},
    {"RS512 signature under an RS256 header", HDR, PL_OK, SIG_RS512, "access", NULL,
     JWT_BAD_SIGNATURE},
    {"HS256 signature under an RS256 header", HDR, PL_OK, SIG_HS256_PUB, "access", NULL,
     JWT_BAD_SIGNATURE},
    {"PS256", "{\"alg\":\"PS256\",\"kid\":\"%s\"}", PL_OK, SIG_RS256, "access", NULL, JWT_BAD_ALG},
    {"alg lower case", "{\"alg\":\"rs256\",\"kid\":\"%s\"}", PL_OK, SIG_RS256, "access", NULL,
     JWT_BAD_ALG},
    {"alg missing", "{\"kid\":\"%s\",\"typ\":\"JWT\"}", PL_OK, SIG_RS256, "access", NULL,
     JWT_BAD_ALG},
    {"alg not a string", "{\"alg\":256,\"kid\":\"%s\"}", PL_OK, SIG_RS256, "access", NULL,
     JWT_BAD_ALG},
    {"alg array", "{\"alg\":[\"RS256\"],\"kid\":\"%s\"}", PL_OK, SIG_RS256, "access", NULL,
     JWT_BAD_ALG},
    {"alg with NUL escape", "{\"alg\":\"RS256\\u0000\",\"kid\":\"%s\"}", PL_OK, SIG_RS256, "access",
     NULL, JWT_MALFORMED},
    /* step 2: forbidden headers */
    {"jku header", "{\"alg\":\"RS256\",\"kid\":\"%s\",\"jku\":\"https://evil/jwks\"}", PL_OK,
     SIG_RS256, "access", NULL, JWT_BAD_HEADER},
    {"x5u header", "{\"alg\":\"RS256\",\"kid\":\"%s\",\"x5u\":\"https://evil/cert\"}", PL_OK,
     SIG_RS256, "access", NULL, JWT_BAD_HEADER},
    {"jwk header", "{\"alg\":\"RS256\",\"kid\":\"%s\",\"jwk\":{\"kty\":\"RSA\"}}", PL_OK, SIG_RS256,
     "access", NULL, JWT_BAD_HEADER},
    {"jku null", "{\"alg\":\"RS256\",\"kid\":\"%s\",\"jku\":null}", PL_OK, SIG_RS256, "access",
     NULL, JWT_BAD_HEADER},
    {"crit header", "{\"alg\":\"RS256\",\"kid\":\"%s\",\"crit\":[\"exp\"]}", PL_OK, SIG_RS256,
     "access", NULL, JWT_BAD_HEADER},
    /* step 3: kid */
    {"kid missing", "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", PL_OK, SIG_RS256, "access", NULL,
     JWT_NO_KID},
    {"kid empty", "{\"alg\":\"RS256\",\"kid\":\"\"}", PL_OK, SIG_RS256, "access", NULL, JWT_NO_KID},
    {"kid null", "{\"alg\":\"RS256\",\"kid\":null}", PL_OK, SIG_RS256, "access", NULL, JWT_NO_KID},
    {"kid number", "{\"alg\":\"RS256\",\"kid\":7}", PL_OK, SIG_RS256, "access", NULL, JWT_NO_KID},
    {"kid unknown", "{\"alg\":\"RS256\",\"kid\":\"nope\"}", PL_OK, SIG_RS256, "access", NULL,
     JWT_UNKNOWN_KID},
    {"kid prefix of a known one", "{\"alg\":\"RS256\",\"kid\":\"oth\"}", PL_OK, SIG_RS256, "access",
     NULL, JWT_UNKNOWN_KID},
    {"kid of the other key, signed by ours", HDR_OTHER, PL_OK, SIG_RS256, "access", NULL,
     JWT_BAD_SIGNATURE},
    {"kid ours, signed by a stranger", HDR, PL_OK, SIG_OTHER_KEY, "access", NULL,
     JWT_BAD_SIGNATURE},
    /* step 1: JSON shape */
    {"header not JSON", "not json", PL_OK, SIG_RS256, "access", NULL, JWT_MALFORMED},
    {"header array", "[\"RS256\"]", PL_OK, SIG_RS256, "access", NULL, JWT_MALFORMED},
    {"header string", "\"RS256\"", PL_OK, SIG_RS256, "access", NULL, JWT_MALFORMED},
    {"header with trailing garbage", HDR "x", PL_OK, SIG_RS256, "access", NULL, JWT_MALFORMED},
    {"header duplicate alg", "{\"alg\":\"none\",\"alg\":\"RS256\",\"kid\":\"%s\"}", PL_OK,
     SIG_RS256, "access", NULL, JWT_MALFORMED},
    {"payload array", HDR, "[1,2,3]", SIG_RS256, "access", NULL, JWT_MALFORMED},
    {"payload null", HDR, "null", SIG_RS256, "access", NULL, JWT_MALFORMED},
    {"payload number", HDR, "42", SIG_RS256, "access", NULL, JWT_MALFORMED},
    {"payload not JSON", HDR, "{\"sub\":", SIG_RS256, "access", NULL, JWT_MALFORMED},
    {"payload duplicate sub", HDR, PL(TA AUD ",\"sub\":\"admin\""), SIG_RS256, "access", NULL,
     JWT_MALFORMED},
    {"payload invalid UTF-8", HDR, "{\"sub\":\"\xff\"}", SIG_RS256, "access", NULL, JWT_MALFORMED},
    {"payload huge integer", HDR,
     PL(TA AUD ",\"n\":123456789012345678901234567890123456789012345678901234567890"), SIG_RS256,
     "access", NULL, JWT_MALFORMED},
    /* step 5: claims */
    {"jti missing", HDR, "{\"iat\":1800000000,\"exp\":1800000900,\"sub\":\"u\"" TA AUD "}",
     SIG_RS256, "access", NULL, JWT_BAD_CLAIMS},
    {"iat missing", HDR, "{\"jti\":\"j\",\"exp\":1800000900,\"sub\":\"u\"" TA AUD "}", SIG_RS256,
     "access", NULL, JWT_BAD_CLAIMS},
    {"exp missing", HDR, "{\"jti\":\"j\",\"iat\":1800000000,\"sub\":\"u\"" TA AUD "}", SIG_RS256,
     "access", NULL, JWT_BAD_CLAIMS},
    {"sub missing", HDR, "{\"jti\":\"j\",\"iat\":1800000000,\"exp\":1800000900" TA AUD "}",
     SIG_RS256, "access", NULL, JWT_BAD_CLAIMS},
    {"jti null", HDR,
     "{\"jti\":null,\"iat\":1800000000,\"exp\":1800000900,\"sub\":\"u\"" TA AUD "}", SIG_RS256,
     "access", NULL, JWT_BAD_CLAIMS},
    {"iat string", HDR,
     "{\"jti\":\"j\",\"iat\":\"1800000000\",\"exp\":1800000900,\"sub\":\"u\"" TA AUD "}", SIG_RS256,
     "access", NULL, JWT_BAD_CLAIMS},
    {"exp string", HDR,
     "{\"jti\":\"j\",\"iat\":1800000000,\"exp\":\"1800000900\",\"sub\":\"u\"" TA AUD "}", SIG_RS256,
     "access", NULL, JWT_BAD_CLAIMS},
    {"exp boolean", HDR, "{\"jti\":\"j\",\"iat\":1800000000,\"exp\":true,\"sub\":\"u\"" TA AUD "}",
     SIG_RS256, "access", NULL, JWT_BAD_CLAIMS},
    {"iat in the future by 6 s", HDR,
     "{\"jti\":\"j\",\"iat\":1800000006,\"exp\":1800000900,\"sub\":\"u\"" TA AUD "}", SIG_RS256,
     "access", NULL, JWT_IAT_FUTURE},
    {"iat in the future by 5 s", HDR,
     "{\"jti\":\"j\",\"iat\":1800000005,\"exp\":1800000900,\"sub\":\"u\"" TA AUD "}", SIG_RS256,
     "access", NULL, JWT_OK},
    {"iat in the future by 4 s", HDR,
     "{\"jti\":\"j\",\"iat\":1800000004,\"exp\":1800000900,\"sub\":\"u\"" TA AUD "}", SIG_RS256,
     "access", NULL, JWT_OK},
    {"iat real 5.5 s ahead", HDR,
     "{\"jti\":\"j\",\"iat\":1800000005.5,\"exp\":1800000900,\"sub\":\"u\"" TA AUD "}", SIG_RS256,
     "access", NULL, JWT_IAT_FUTURE},
    {"nbf in the future", HDR, PL(TA AUD ",\"nbf\":1800000001"), SIG_RS256, "access", NULL,
     JWT_NOT_YET_VALID},
    {"nbf now", HDR, PL(TA AUD ",\"nbf\":1800000000"), SIG_RS256, "access", NULL, JWT_OK},
    {"nbf string", HDR, PL(TA AUD ",\"nbf\":\"0\""), SIG_RS256, "access", NULL, JWT_BAD_CLAIMS},
    {"nbf null", HDR, PL(TA AUD ",\"nbf\":null"), SIG_RS256, "access", NULL, JWT_BAD_CLAIMS},
    /* step 6: expiry */
    {"expired", HDR,
     "{\"jti\":\"j\",\"iat\":1799999000,\"exp\":1799999999,\"sub\":\"u\"" TA AUD "}", SIG_RS256,
     "access", NULL, JWT_EXPIRED},
    {"exp == now is still valid", HDR,
     "{\"jti\":\"j\",\"iat\":1799999000,\"exp\":1800000000,\"sub\":\"u\"" TA AUD "}", SIG_RS256,
     "access", NULL, JWT_OK},
    {"exp real just before now", HDR,
     "{\"jti\":\"j\",\"iat\":1799999000,\"exp\":1799999999.5,\"sub\":\"u\"" TA AUD "}", SIG_RS256,
     "access", NULL, JWT_EXPIRED},
    {"expired and wrong type: expiry first", HDR,
     "{\"jti\":\"j\",\"iat\":1799999000,\"exp\":1799999999,\"sub\":\"u\",\"type\":\"refresh\"}",
     SIG_RS256, "access", NULL, JWT_EXPIRED},
    {"expired with a bad signature: signature first", HDR,
     "{\"jti\":\"j\",\"iat\":1799999000,\"exp\":1799999999,\"sub\":\"u\"" TA AUD "}", SIG_OTHER_KEY,
     "access", NULL, JWT_BAD_SIGNATURE},
    /* step 7: type */
    {"wrong type", HDR, PL(",\"type\":\"refresh\"" AUD), SIG_RS256, "access", NULL, JWT_BAD_TYPE},
    {"m2m where access expected", HDR, PL(",\"type\":\"m2m\"" AUD), SIG_RS256, "access", NULL,
     JWT_BAD_TYPE},
    {"type missing", HDR, PL(AUD), SIG_RS256, "access", NULL, JWT_BAD_TYPE},
    {"type number", HDR, PL(",\"type\":1" AUD), SIG_RS256, "access", NULL, JWT_BAD_TYPE},
    {"type not in the list", HDR, PL(",\"type\":\"admin\"" AUD), SIG_RS256, NULL, NULL,
     JWT_BAD_TYPE},
    {"type not in the list even if expected", HDR, PL(",\"type\":\"admin\"" AUD), SIG_RS256,
     "admin", NULL, JWT_BAD_TYPE},
    {"type case matters", HDR, PL(",\"type\":\"Access\"" AUD), SIG_RS256, "access", NULL,
     JWT_BAD_TYPE},
    {"any known type when none expected", HDR, PL(",\"type\":\"m2m\"" AUD), SIG_RS256, NULL, NULL,
     JWT_OK},
    {"otp_challenge", HDR, PL(",\"type\":\"otp_challenge\"" AUD), SIG_RS256, "otp_challenge", NULL,
     JWT_OK},
    {"action_token", HDR, PL(",\"type\":\"action_token\"" AUD), SIG_RS256, "action_token", NULL,
     JWT_OK},
    {"email_verify", HDR, PL(",\"type\":\"email_verify\"" AUD), SIG_RS256, "email_verify", NULL,
     JWT_OK},
    /* step 8: audience */
    {"aud missing", HDR, PL(TA), SIG_RS256, "access", NULL, JWT_BAD_AUDIENCE},
    {"aud wrong", HDR, PL(TA ",\"aud\":\"billing\""), SIG_RS256, "access", NULL, JWT_BAD_AUDIENCE},
    {"aud null", HDR, PL(TA ",\"aud\":null"), SIG_RS256, "access", NULL, JWT_BAD_AUDIENCE},
    {"aud number", HDR, PL(TA ",\"aud\":123"), SIG_RS256, "access", NULL, JWT_BAD_AUDIENCE},
    {"aud object", HDR, PL(TA ",\"aud\":{\"auth-service\":1}"), SIG_RS256, "access", NULL,
     JWT_BAD_AUDIENCE},
    {"aud array containing it", HDR, PL(TA ",\"aud\":[\"x\",\"auth-service\"]"), SIG_RS256,
     "access", NULL, JWT_OK},
    {"aud array without it", HDR, PL(TA ",\"aud\":[\"x\",\"auth-service2\"]"), SIG_RS256, "access",
     NULL, JWT_BAD_AUDIENCE},
    {"aud padded string", HDR, PL(TA ",\"aud\":\" auth-service\\t\""), SIG_RS256, "access", NULL,
     JWT_OK},
    {"aud array with padded entries", HDR, PL(TA ",\"aud\":[\"  \",\" auth-service \"]"), SIG_RS256,
     "access", NULL, JWT_OK},
    {"aud array of blanks", HDR, PL(TA ",\"aud\":[\"\",\"   \"]"), SIG_RS256, "access", NULL,
     JWT_BAD_AUDIENCE},
    {"aud empty array", HDR, PL(TA ",\"aud\":[]"), SIG_RS256, "access", NULL, JWT_BAD_AUDIENCE},
    {"aud non-strings ignored", HDR, PL(TA ",\"aud\":[5,null,\"auth-service\"]"), SIG_RS256,
     "access", NULL, JWT_OK},
    {"aud nested array", HDR, PL(TA ",\"aud\":[[\"auth-service\"]]"), SIG_RS256, "access", NULL,
     JWT_BAD_AUDIENCE},
    {"aud case matters", HDR, PL(TA ",\"aud\":\"Auth-Service\""), SIG_RS256, "access", NULL,
     JWT_BAD_AUDIENCE},
    {"two expected, both present", HDR, PL(TA ",\"aud\":[\"auth-service\",\"orders-api\"]"),
     SIG_RS256, "access", "orders-api", JWT_OK},
    {"two expected, one present", HDR, PL(TA ",\"aud\":[\"orders-api\"]"), SIG_RS256, "access",
     "orders-api", JWT_BAD_AUDIENCE},
    {"two expected, string aud", HDR, PL(TA ",\"aud\":\"auth-service\""), SIG_RS256, "access",
     "orders-api", JWT_BAD_AUDIENCE},
};

static void test_jwt_attack_table(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof vcases / sizeof *vcases; i++) {
        const struct vcase *c = &vcases[i];
        char hdr[512];
        snprintf(hdr, sizeof hdr, c->hdr, PUB_KID);
        char *tok = make_token(hdr, c->payload, c->sig);
        const char *auds[2] = {"auth-service", c->aud2};
        expect_verify(c->name, tok, strlen(tok), c->type, c->aud2 ? auds : SERVICE_AUD,
                      c->aud2 ? 2 : 1, c->want);
        free(tok);
    }
}

static void test_jwt_structure(void **st)
{
    (void)st;
    char hdr[256];
    snprintf(hdr, sizeof hdr, HDR, PUB_KID);
    char *good = make_token(hdr, PL_OK, SIG_RS256);
    size_t gl = strlen(good);
    const char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
    char buf[4096];

    expect_verify("baseline", good, gl, "access", SERVICE_AUD, 1, JWT_OK);
    /* length is explicit: a prefix is not the token */
    expect_verify("prefix", good, gl - 1, "access", SERVICE_AUD, 1, JWT_BAD_SIGNATURE);

    const char *raw[] = {"",    ".",    "..",   "...",  "a",           "a.b",           "a.b.c.d",
                         "..c", "a..c", "a.b.", ".b.c", "eyJ.eyJ.sig", "\x00.\x00.\x00"};
    for (size_t i = 0; i < sizeof raw / sizeof *raw; i++)
        expect_verify(raw[i], raw[i], strlen(raw[i]), "access", SERVICE_AUD, 1, JWT_MALFORMED);
    expect_verify("NULs", "\0.\0.\0", 5, "access", SERVICE_AUD, 1, JWT_MALFORMED);
    expect_verify("NULL token", NULL, 0, "access", SERVICE_AUD, 1, JWT_MALFORMED);

    /* two segments; four segments */
    expect_verify("two segments", good, (size_t)(d2 - good), "access", SERVICE_AUD, 1,
                  JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s.x", good);
    expect_verify("four segments", buf, strlen(buf), "access", SERVICE_AUD, 1, JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s.", good);
    expect_verify("trailing dot", buf, strlen(buf), "access", SERVICE_AUD, 1, JWT_MALFORMED);
    /* empty header / payload / signature */
    snprintf(buf, sizeof buf, "%s", d1);
    expect_verify("empty header", buf, strlen(buf), "access", SERVICE_AUD, 1, JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%.*s.%s", (int)(d1 - good), good, d2);
    expect_verify("empty payload", buf, strlen(buf), "access", SERVICE_AUD, 1, JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%.*s.", (int)(d2 - good), good);
    expect_verify("empty signature", buf, strlen(buf), "access", SERVICE_AUD, 1, JWT_MALFORMED);
    /* whitespace around the token is not trimmed here (callers trim) */
    snprintf(buf, sizeof buf, " %s", good);
    expect_verify("leading space", buf, strlen(buf), "access", SERVICE_AUD, 1, JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s\n", good);
    expect_verify("trailing newline", buf, strlen(buf), "access", SERVICE_AUD, 1,
                  JWT_BAD_SIGNATURE);
    /* header in standard base64 alphabet / with garbage */
    snprintf(buf, sizeof buf, "eyJ+%s", good + 3);
    expect_verify("'+' in header", buf, strlen(buf), "access", SERVICE_AUD, 1, JWT_MALFORMED);

    /* tampered payload: swap in another valid payload, keep the signature */
    char *other = make_token(hdr, PL(TA ",\"aud\":\"auth-service\",\"role\":\"admin\""), SIG_RS256);
    const char *o1 = strchr(other, '.'), *o2 = strrchr(other, '.');
    snprintf(buf, sizeof buf, "%.*s%.*s%s", (int)(d1 - good), good, (int)(o2 - o1), o1, d2);
    expect_verify("payload swapped", buf, strlen(buf), "access", SERVICE_AUD, 1, JWT_BAD_SIGNATURE);
    free(other);
    /* every single-character change of the payload or the signature fails */
    for (size_t i = (size_t)(d1 - good) + 1; i < gl; i++) {
        if (good[i] == '.')
            continue;
        memcpy(buf, good, gl + 1);
        buf[i] = buf[i] == 'A' ? 'B' : 'A';
        json_t *cl = NULL;
        struct jwt_error err;
        assert_int_equal(jwt_verify(fix_set, buf, gl, "access", SERVICE_AUD, 1, NOW, &cl, &err),
                         RC_INVALID);
        assert_true(err.reason == JWT_BAD_SIGNATURE || err.reason == JWT_MALFORMED);
    }
    /* truncated and padded signatures */
    expect_verify("signature truncated", good, gl - 4, "access", SERVICE_AUD, 1, JWT_BAD_SIGNATURE);
    snprintf(buf, sizeof buf, "%s==", good);
    expect_verify("signature padded (allowed)", buf, strlen(buf), "access", SERVICE_AUD, 1, JWT_OK);
    snprintf(buf, sizeof buf, "%sAAAA", good);
    expect_verify("signature too long", buf, strlen(buf), "access", SERVICE_AUD, 1,
                  JWT_BAD_SIGNATURE);
    free(good);
    /* padded header and payload, signed as written: padding is optional */
    char *padded = make_token_ex(hdr, PL_OK "  ", SIG_RS256, true);
    assert_non_null(strchr(padded, '='));
    expect_verify("padded segments", padded, strlen(padded), "access", SERVICE_AUD, 1, JWT_OK);
    free(padded);
    /* a blank expected audience never matches (fails closed) */
    const char *blank[] = {""};
    char *blank_aud = make_token(hdr, PL(TA ",\"aud\":[\"\",\" \"]"), SIG_RS256);
    expect_verify("blank expected audience", blank_aud, strlen(blank_aud), "access", blank, 1,
                  JWT_BAD_AUDIENCE);
    free(blank_aud);
    /* no audience expected: aud is not required */
    char *noaud = make_token(hdr, PL(TA), SIG_RS256);
    expect_verify("no audience expected", noaud, strlen(noaud), "access", NULL, 0, JWT_OK);
    free(noaud);
}

static void test_jwt_oversized(void **st)
{
    (void)st;
    char hdr[256];
    snprintf(hdr, sizeof hdr, HDR, PUB_KID);
    /* a valid signed token just over the limit is refused unread */
    size_t pad_len = JWT_MAX_TOKEN_LEN * 3 / 4;
    char *payload = xmalloc(pad_len + 200);
    int n = snprintf(payload, 200, "%s", PL(TA AUD ",\"pad\":\""));
    memset(payload + n, 'p', pad_len - 400);
    snprintf(payload + n + pad_len - 400, 10, "\"}");
    char *tok = make_token(hdr, payload, SIG_RS256);
    assert_true(strlen(tok) > JWT_MAX_TOKEN_LEN);
    expect_verify("oversized", tok, strlen(tok), "access", SERVICE_AUD, 1, JWT_MALFORMED);
    free(tok);
    free(payload);
    /* junk of any length beyond the limit, without reading it */
    char *junk = xmalloc(1 << 20);
    memset(junk, '.', 1 << 20);
    expect_verify("1 MiB of dots", junk, 1 << 20, "access", SERVICE_AUD, 1, JWT_MALFORMED);
    free(junk);

    /* the signer refuses to produce what the verifier would refuse */
    struct jwt_signer *s = NULL;
    assert_int_equal(jwt_signer_new(PRIV_PEM, strlen(PRIV_PEM), PUB_KID, &s), RC_OK);
    json_t *claims = json_pack("{s:s,s:i,s:i,s:s,s:s,s:s}", "jti", "j", "iat", NOW, "exp",
                               NOW + 900, "sub", "u", "type", "access", "aud", "auth-service");
    char *big = xmalloc(JWT_MAX_TOKEN_LEN);
    memset(big, 'b', JWT_MAX_TOKEN_LEN - 1);
    big[JWT_MAX_TOKEN_LEN - 1] = '\0';
    json_object_set_new(claims, "big", json_string(big));
    char *out = (char *)1;
    assert_int_equal(jwt_sign(s, claims, &out), RC_LIMIT);
    assert_null(out);
    /* and a token right at the limit still verifies */
    size_t lo = 0, hi = JWT_MAX_TOKEN_LEN;
    while (lo + 1 < hi) { /* the largest "big" that still signs */
        size_t mid = (lo + hi) / 2;
        big[mid] = '\0';
        json_object_set_new(claims, "big", json_string(big));
        out = NULL;
        if (jwt_sign(s, claims, &out) == RC_OK) {
            lo = mid;
            free(out);
        } else {
            hi = mid;
        }
        big[mid] = 'b';
    }
    big[lo] = '\0';
    json_object_set_new(claims, "big", json_string(big));
    assert_int_equal(jwt_sign(s, claims, &out), RC_OK);
    assert_true(strlen(out) <= JWT_MAX_TOKEN_LEN && strlen(out) > JWT_MAX_TOKEN_LEN - 8);
    expect_verify("at the limit", out, strlen(out), "access", SERVICE_AUD, 1, JWT_OK);
    free(out);
    free(big);
    json_decref(claims);
    jwt_signer_unref(s);
}

/* ---- signing and interoperability ------------------------------------------ */

static void test_jwt_pyjwt_interop(void **st)
{
    (void)st;
    /* PyJWT → us */
    const char *auds[] = {"auth-service", "orders-api"};
    json_t *claims = NULL;
    struct jwt_error err;
    assert_int_equal(jwt_verify(fix_set, PYJWT_TOKEN, strlen(PYJWT_TOKEN), "access", auds, 2,
                                1767225600 + 10, &claims, &err),
                     RC_OK);
    json_t *want = json_loads(PYJWT_CLAIMS, 0, NULL);
    assert_non_null(want);
    assert_true(json_equal(claims, want));
    json_decref(claims);
    assert_int_equal(jwt_verify(fix_set, PYJWT_TOKEN, strlen(PYJWT_TOKEN), "access", auds, 2,
                                1767226500 + 1, &claims, &err),
                     RC_INVALID);
    assert_int_equal(err.reason, JWT_EXPIRED);

    /* us → PyJWT: the same claims give PyJWT's token byte for byte */
    struct jwt_signer *s = NULL;
    assert_int_equal(jwt_signer_new(PRIV_PEM, strlen(PRIV_PEM), PUB_KID, &s), RC_OK);
    assert_string_equal(jwt_signer_kid(s), PUB_KID);
    char *tok = NULL;
    assert_int_equal(jwt_sign(s, want, &tok), RC_OK);
    assert_string_equal(tok, PYJWT_TOKEN);
    free(tok);
    jwt_signer_unref(s);
    /* a PKCS#1 private PEM signs identically */
    assert_int_equal(jwt_signer_new(PRIV_PEM_PKCS1, strlen(PRIV_PEM_PKCS1), PUB_KID, &s), RC_OK);
    assert_int_equal(jwt_sign(s, want, &tok), RC_OK);
    assert_string_equal(tok, PYJWT_TOKEN);
    free(tok);
    jwt_signer_unref(s);
    json_decref(want);
}

static void test_jwt_sign_roundtrip(void **st)
{
    (void)st;
    char *priv = NULL, *pub = NULL;
    assert_int_equal(rsakey_generate(&priv, &pub), RC_OK);
    char kid[RSAKEY_KID_LEN + 1];
    rsakey_kid(pub, strlen(pub), kid);
    struct jwt_signer *s = NULL;
    assert_int_equal(jwt_signer_new(priv, strlen(priv), kid, &s), RC_OK);
    struct jwt_key_input in = {kid, pub, strlen(pub)};
    struct jwt_keyset *ks = NULL;
    assert_int_equal(jwt_keyset_new(&in, 1, &ks), RC_OK);

    json_t *claims = json_pack("{s:s,s:I,s:I,s:s,s:s,s:[s,s],s:s,s:b,s:[]}", "jti", "j-1", "iat",
                               (json_int_t)NOW, "exp", (json_int_t)NOW + 900, "sub", "user-1",
                               "type", "access", "aud", "auth-service", "orders-api", "email",
                               "\xc3\xa9t\xc3\xa9@example.com", "email_verified", 1, "scopes");
    char *tok = NULL;
    assert_int_equal(jwt_sign(s, claims, &tok), RC_OK);
    /* header exactly as api-core §5.1, member order included */
    const char *dot = strchr(tok, '.');
    unsigned char hdr[256];
    size_t hl = 0;
    assert_int_equal(
        crypto_b64_decode(CRYPTO_B64_URL, tok, (size_t)(dot - tok), hdr, sizeof hdr - 1, &hl),
        RC_OK);
    hdr[hl] = '\0';
    char want_hdr[128];
    snprintf(want_hdr, sizeof want_hdr, "{\"alg\":\"RS256\",\"kid\":\"%s\",\"typ\":\"JWT\"}", kid);
    assert_string_equal((char *)hdr, want_hdr);
    assert_null(strchr(tok, '='));

    json_t *got = NULL;
    struct jwt_error err;
    assert_int_equal(jwt_verify(ks, tok, strlen(tok), "access", SERVICE_AUD, 1, NOW, &got, &err),
                     RC_OK);
    assert_int_equal(err.reason, JWT_OK);
    assert_true(json_equal(got, claims));
    json_decref(got);
    /* the fixture set does not know this kid */
    assert_int_equal(
        jwt_verify(fix_set, tok, strlen(tok), "access", SERVICE_AUD, 1, NOW, &got, &err),
        RC_INVALID);
    assert_int_equal(err.reason, JWT_UNKNOWN_KID);
    assert_string_equal(err.detail, "Invalid token.");
    free(tok);

    /* bad input to the signer */
    json_t *arr = json_array();
    assert_int_equal(jwt_sign(s, arr, &tok), RC_INVALID);
    assert_null(tok);
    json_decref(arr);
    struct jwt_signer *bad = NULL;
    assert_int_equal(jwt_signer_new(priv, strlen(priv), "", &bad), RC_INVALID);
    assert_int_equal(jwt_signer_new(pub, strlen(pub), kid, &bad), RC_INVALID);
    assert_int_equal(jwt_signer_new(PRIV_PEM_ENCRYPTED, strlen(PRIV_PEM_ENCRYPTED), kid, &bad),
                     RC_INVALID);
    assert_null(bad);
    /* a kid needing JSON escapes is escaped in the header */
    assert_int_equal(jwt_signer_new(priv, strlen(priv), "a\"b\\c", &bad), RC_OK);
    assert_int_equal(jwt_sign(bad, claims, &tok), RC_OK);
    dot = strchr(tok, '.');
    assert_int_equal(
        crypto_b64_decode(CRYPTO_B64_URL, tok, (size_t)(dot - tok), hdr, sizeof hdr - 1, &hl),
        RC_OK);
    hdr[hl] = '\0';
    assert_string_equal((char *)hdr, "{\"alg\":\"RS256\",\"kid\":\"a\\\"b\\\\c\",\"typ\":\"JWT\"}");
    free(tok);
    jwt_signer_unref(bad);

    json_decref(claims);
    jwt_signer_unref(s);
    jwt_keyset_unref(ks);
    xfree_secret_str(priv);
    free(pub);
}

/* ---- key sets ---------------------------------------------------------------- */

static void test_keyset_build(void **st)
{
    (void)st;
    struct jwt_keyset *ks = NULL;
    struct jwt_key_input dup[] = {{"k", PUB_PEM, strlen(PUB_PEM)},
                                  {"k", PUB2_PEM, strlen(PUB2_PEM)}};
    assert_int_equal(jwt_keyset_new(dup, 2, &ks), RC_CONFLICT);
    assert_null(ks);
    struct jwt_key_input empty_kid[] = {{"", PUB_PEM, strlen(PUB_PEM)}};
    assert_int_equal(jwt_keyset_new(empty_kid, 1, &ks), RC_INVALID);
    struct jwt_key_input bad_pem[] = {{"a", PUB_PEM, strlen(PUB_PEM)}, {"b", "nope", 4}};
    assert_int_equal(jwt_keyset_new(bad_pem, 2, &ks), RC_INVALID);
    struct jwt_key_input priv_pem[] = {{"a", PRIV_PEM, strlen(PRIV_PEM)}};
    assert_int_equal(jwt_keyset_new(priv_pem, 1, &ks), RC_INVALID);
    struct jwt_key_input weak[] = {{"a", PUB1024_PEM, strlen(PUB1024_PEM)}};
    assert_int_equal(jwt_keyset_new(weak, 1, &ks), RC_INVALID);
    struct jwt_key_input ec[] = {{"a", EC_PUB_PEM, strlen(EC_PUB_PEM)}};
    assert_int_equal(jwt_keyset_new(ec, 1, &ks), RC_INVALID);

    /* sorted by kid in byte order, whatever the input order */
    struct jwt_key_input three[] = {{"b", PUB_PEM, strlen(PUB_PEM)},
                                    {"B", PUB2_PEM, strlen(PUB2_PEM)},
                                    {"ab", PUB_PEM, strlen(PUB_PEM)}};
    assert_int_equal(jwt_keyset_new(three, 3, &ks), RC_OK);
    assert_int_equal(jwt_keyset_count(ks), 3);
    assert_string_equal(jwt_keyset_kid(ks, 0), "B");
    assert_string_equal(jwt_keyset_kid(ks, 1), "ab");
    assert_string_equal(jwt_keyset_kid(ks, 2), "b");
    assert_null(jwt_keyset_kid(ks, 3));
    char *n = NULL, *e = NULL;
    assert_int_equal(rsakey_jwk_params(jwt_keyset_key(ks, 2), &n, &e), RC_OK);
    assert_string_equal(n, PUB_N);
    free(n);
    free(e);
    jwt_keyset_unref(ks);

    /* an empty set rejects everything as an unknown kid */
    assert_int_equal(jwt_keyset_new(NULL, 0, &ks), RC_OK);
    json_t *cl = NULL;
    struct jwt_error err;
    assert_int_equal(jwt_verify(ks, PYJWT_TOKEN, strlen(PYJWT_TOKEN), "access", SERVICE_AUD, 1,
                                1767225600, &cl, &err),
                     RC_INVALID);
    assert_int_equal(err.reason, JWT_UNKNOWN_KID);
    jwt_keyset_unref(ks);
    jwt_keyset_unref(NULL);
    jwt_signer_unref(NULL);
}

static void test_keyset_refcount(void **st)
{
    (void)st;
    /* a request keeps its set while the cache swaps in a new one */
    struct jwt_key_input in = {PUB_KID, PUB_PEM, strlen(PUB_PEM)};
    struct jwt_keyset *cache = NULL;
    assert_int_equal(jwt_keyset_new(&in, 1, &cache), RC_OK);
    struct jwt_keyset *held = jwt_keyset_ref(cache);
    struct jwt_keyset *fresh = NULL;
    struct jwt_key_input in2 = {"other", PUB2_PEM, strlen(PUB2_PEM)};
    assert_int_equal(jwt_keyset_new(&in2, 1, &fresh), RC_OK);
    jwt_keyset_unref(cache); /* the cache drops its reference */
    cache = fresh;
    json_t *cl = NULL;
    assert_int_equal(jwt_verify(held, PYJWT_TOKEN, strlen(PYJWT_TOKEN), "access", SERVICE_AUD, 1,
                                1767225600, &cl, NULL),
                     RC_OK);
    json_decref(cl);
    jwt_keyset_unref(held); /* last reference: freed (ASan checks) */
    jwt_keyset_unref(cache);
}

/* ---- fuzzing and threads -------------------------------------------------- */

/* Every mutation of PYJWT_TOKEN must fail against ks. */
static void mutation_fuzz(const struct jwt_keyset *ks)
{
    size_t len = strlen(PYJWT_TOKEN);
    char *buf = xmalloc(len + 64);
    const char alphabet[] = "AZaz09-_.=+/ \x00\xff{}\"";
    uint32_t seed = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(buf, PYJWT_TOKEN, len);
        size_t n = len;
        int edits = 1 + iter % 4;
        for (int e = 0; e < edits && n > 1; e++) {
            seed = seed * 1103515245u + 12345u;
            size_t pos = (seed >> 8) % n;
            seed = seed * 1103515245u + 12345u;
            switch (seed % 3) {
            case 0: /* replace */
                buf[pos] = alphabet[(seed >> 8) % (sizeof alphabet - 1)];
                break;
            case 1: /* delete */
                memmove(buf + pos, buf + pos + 1, n - pos - 1);
                n--;
                break;
            default: /* truncate */
                n = pos + 1;
                break;
            }
        }
        if (n == len && memcmp(buf, PYJWT_TOKEN, len) == 0)
            continue;
        json_t *cl = (json_t *)1;
        struct jwt_error err;
        rc_t rc = jwt_verify(ks, buf, n, "access", SERVICE_AUD, 1, 1767225600, &cl, &err);
        if (rc == RC_OK) /* only an unchanged header+payload+signature may pass */
            fail_msg("mutation %d accepted", iter);
        assert_null(cl);
    }
    free(buf);
}

static void test_jwt_mutation_fuzz(void **st)
{
    (void)st;
    mutation_fuzz(fix_set);
    /* the same with the original recorded in a memo: no near miss of it
     * may ride on the memo entry */
    struct jwt_memo *m = jwt_memo_new();
    struct jwt_key_input in = {PUB_KID, PUB_PEM, strlen(PUB_PEM)};
    struct jwt_keyset *ks = NULL;
    assert_int_equal(jwt_keyset_new(&in, 1, &ks), RC_OK);
    jwt_keyset_set_memo(ks, m);
    json_t *cl = NULL;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(jwt_verify(ks, PYJWT_TOKEN, strlen(PYJWT_TOKEN), "access", SERVICE_AUD, 1,
                                    1767225600, &cl, NULL),
                         RC_OK);
        json_decref(cl);
    }
    assert_int_equal(jwt_memo_hits(m), 1);
    mutation_fuzz(ks);
    assert_int_equal(jwt_memo_hits(m), 1);
    jwt_keyset_unref(ks);
    jwt_memo_unref(m);
}

/* ---- signature memo ------------------------------------------------------- */

static void verify_expect(const struct jwt_keyset *ks, const char *tok, const char *type,
                          int64_t now, enum jwt_reason want)
{
    json_t *cl = NULL;
    struct jwt_error err;
    rc_t rc = jwt_verify(ks, tok, strlen(tok), type, SERVICE_AUD, 1, now, &cl, &err);
    assert_int_equal(err.reason, want);
    assert_int_equal(rc, want == JWT_OK ? RC_OK : RC_INVALID);
    json_decref(cl);
}

/* A signer and a one-key set for PRIV_PEM/PUB_PEM sharing memo m. */
static void memo_pair(struct jwt_memo *m, struct jwt_signer **s, struct jwt_keyset **ks)
{
    assert_int_equal(jwt_signer_new(PRIV_PEM, strlen(PRIV_PEM), PUB_KID, s), RC_OK);
    jwt_signer_set_memo(*s, m);
    struct jwt_key_input in = {PUB_KID, PUB_PEM, strlen(PUB_PEM)};
    assert_int_equal(jwt_keyset_new(&in, 1, ks), RC_OK);
    jwt_keyset_set_memo(*ks, m);
}

static void test_jwt_memo(void **st)
{
    (void)st;
    struct jwt_memo *m = jwt_memo_new();
    struct jwt_signer *s = NULL;
    struct jwt_keyset *ks = NULL;
    memo_pair(m, &s, &ks);
    json_t *claims =
        json_pack("{s:s,s:I,s:I,s:s,s:s,s:s}", "jti", "j-memo", "iat", (json_int_t)NOW, "exp",
                  (json_int_t)NOW + 60, "sub", "u", "type", "refresh", "aud", "auth-service");
    char *tok = NULL;
    assert_int_equal(jwt_sign(s, claims, &tok), RC_OK);

    /* a token this signer made verifies from the memo, every time */
    verify_expect(ks, tok, "refresh", NOW, JWT_OK);
    verify_expect(ks, tok, "refresh", NOW, JWT_OK);
    assert_int_equal(jwt_memo_hits(m), 2);
    /* the claims are still checked on a memo hit */
    verify_expect(ks, tok, "refresh", NOW + 61, JWT_EXPIRED);
    verify_expect(ks, tok, "access", NOW, JWT_BAD_TYPE);
    assert_int_equal(jwt_memo_hits(m), 4);
    /* same signing input, another signature: not the recorded bytes */
    char *forged = xstrdup(tok);
    size_t fl = strlen(forged);
    forged[fl - 2] = forged[fl - 2] == 'A' ? 'B' : 'A';
    verify_expect(ks, forged, "refresh", NOW, JWT_BAD_SIGNATURE);
    assert_int_equal(jwt_memo_hits(m), 4);
    free(forged);
    /* the kid now names another key: the entry is bound to the old key */
    struct jwt_key_input swapped = {PUB_KID, PUB2_PEM, strlen(PUB2_PEM)};
    struct jwt_keyset *ks2 = NULL;
    assert_int_equal(jwt_keyset_new(&swapped, 1, &ks2), RC_OK);
    jwt_keyset_set_memo(ks2, m);
    verify_expect(ks2, tok, "refresh", NOW, JWT_BAD_SIGNATURE);
    /* the kid left the set (retired key): refused before the memo */
    struct jwt_key_input other = {"other", PUB_PEM, strlen(PUB_PEM)};
    struct jwt_keyset *ks3 = NULL;
    assert_int_equal(jwt_keyset_new(&other, 1, &ks3), RC_OK);
    jwt_keyset_set_memo(ks3, m);
    verify_expect(ks3, tok, "refresh", NOW, JWT_UNKNOWN_KID);
    assert_int_equal(jwt_memo_hits(m), 4);
    /* a set without the memo always does the RSA check */
    verify_expect(fix_set, tok, "refresh", NOW, JWT_OK);
    assert_int_equal(jwt_memo_hits(m), 4);
    /* a set whose memo was detached no longer records or consults */
    jwt_keyset_set_memo(ks, NULL);
    verify_expect(ks, tok, "refresh", NOW, JWT_OK);
    assert_int_equal(jwt_memo_hits(m), 4);
    /* bounded: far more tokens than slots, the newest still hit */
    jwt_keyset_set_memo(ks, m);
    char *last = NULL;
    for (int i = 0; i < JWT_MEMO_SLOTS * 2; i++) {
        free(last);
        json_object_set_new(claims, "jti", json_integer(i));
        assert_int_equal(jwt_sign(s, claims, &last), RC_OK);
    }
    uint64_t before = jwt_memo_hits(m);
    verify_expect(ks, last, "refresh", NOW, JWT_OK);
    assert_int_equal(jwt_memo_hits(m), before + 1);
    free(last);

    free(tok);
    json_decref(claims);
    jwt_signer_unref(s);
    jwt_keyset_unref(ks);
    jwt_keyset_unref(ks2);
    jwt_keyset_unref(ks3);
    jwt_memo_unref(m);
    jwt_memo_unref(NULL);
}

struct thread_arg {
    struct jwt_signer *signer;
    const struct jwt_keyset *ks;
    int ok;
};

static void *worker(void *p)
{
    struct thread_arg *a = p;
    json_t *claims =
        json_pack("{s:s,s:I,s:I,s:s,s:s,s:s}", "jti", "j", "iat", (json_int_t)NOW, "exp",
                  (json_int_t)NOW + 60, "sub", "u", "type", "access", "aud", "auth-service");
    for (int i = 0; i < 300; i++) {
        json_t *cl = NULL;
        if (jwt_verify(a->ks, PYJWT_TOKEN, strlen(PYJWT_TOKEN), "access", SERVICE_AUD, 1,
                       1767225600, &cl, NULL) == RC_OK)
            a->ok++;
        json_decref(cl);
        if (i % 20 == 0) {
            char *tok = NULL;
            if (jwt_sign(a->signer, claims, &tok) == RC_OK &&
                jwt_verify(a->ks, tok, strlen(tok), "access", SERVICE_AUD, 1, NOW, &cl, NULL) ==
                    RC_OK)
                a->ok++;
            json_decref(cl);
            free(tok);
        }
    }
    json_decref(claims);
    return NULL;
}

/* Half the threads verify against the plain fixture set, half against a
 * set sharing a memo with the signer; more threads than the signer has key
 * slots, so some signs wait for a slot. */
static void test_jwt_threads(void **st)
{
    (void)st;
    struct jwt_memo *m = jwt_memo_new();
    struct jwt_signer *s = NULL;
    struct jwt_keyset *ks = NULL;
    memo_pair(m, &s, &ks);
    jwt_memo_unref(m); /* the signer and the set hold it */
    enum { NT = 12 };
    pthread_t th[NT];
    struct thread_arg args[NT];
    for (int i = 0; i < NT; i++) {
        args[i] = (struct thread_arg){jwt_signer_ref(s), i % 2 ? ks : fix_set, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    jwt_signer_unref(s); /* the threads hold the remaining references */
    for (int i = 0; i < NT; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].ok, 300 + 15);
        jwt_signer_unref(args[i].signer);
    }
    jwt_keyset_unref(ks);
}

static void test_reason_names(void **st)
{
    (void)st;
    for (int r = JWT_OK; r <= JWT_BAD_AUDIENCE; r++)
        assert_string_not_equal(jwt_reason_str((enum jwt_reason)r), "unknown");
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rsakey_generate),   cmocka_unit_test(test_rsakey_fixture),
        cmocka_unit_test(test_rsakey_hostile),    cmocka_unit_test(test_jwt_attack_table),
        cmocka_unit_test(test_jwt_structure),     cmocka_unit_test(test_jwt_oversized),
        cmocka_unit_test(test_jwt_pyjwt_interop), cmocka_unit_test(test_jwt_sign_roundtrip),
        cmocka_unit_test(test_keyset_build),      cmocka_unit_test(test_keyset_refcount),
        cmocka_unit_test(test_jwt_mutation_fuzz), cmocka_unit_test(test_jwt_threads),
        cmocka_unit_test(test_reason_names),      cmocka_unit_test(test_jwt_memo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
