/*
 * attest_client.c: the PSA Initial Attestation API for the NSPE (docs/design/token.md section 1), every call
 * a message to the SPE's attestation service, as TF-M's interface/src/tfm_attest_api.c.
 */
#include <string.h>

#include "psa/crypto.h"

#include "../platform/ipc.h"
#include "nspe.h"

#define ATTEST_FN_GET_TOKEN 1
#define ATTEST_FN_GET_TOKEN_SIZE 2

psa_status_t psa_initial_attest_get_token(const uint8_t *auth_challenge, size_t challenge_size,
                                          uint8_t *token_buf, size_t token_buf_size,
                                          size_t *token_size)
{
    struct ipc_invec in[1] = {{auth_challenge, challenge_size}};
    struct ipc_outvec out[1] = {{token_buf, token_buf_size}};
    psa_status_t st = ipc_call(psa_client_fd(), IPC_SVC_ATTEST, ATTEST_FN_GET_TOKEN, in, 1, out, 1);
    *token_size = st == PSA_SUCCESS ? out[0].len : 0;
    return st;
}

psa_status_t psa_initial_attest_get_token_size(size_t challenge_size, size_t *token_size)
{
    uint32_t cs = (uint32_t)challenge_size, ts = 0;
    struct ipc_invec in[1] = {{&cs, sizeof(cs)}};
    struct ipc_outvec out[1] = {{&ts, sizeof(ts)}};
    psa_status_t st =
        ipc_call(psa_client_fd(), IPC_SVC_ATTEST, ATTEST_FN_GET_TOKEN_SIZE, in, 1, out, 1);
    *token_size = st == PSA_SUCCESS ? ts : 0;
    return st;
}
