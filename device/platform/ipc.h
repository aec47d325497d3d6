/*
 * ipc.h: psa_call-style messages between the NSPE and the SPE over a socketpair.
 *
 * On TF-M the non-secure side reaches a secure service only through psa_call(handle, type,
 * in_vec[], out_vec[]) (PSA Firmware Framework-M 1.0, section 4.1); the emulator keeps that
 * shape, with the Linux parts (two processes, a SOCK_SEQPACKET socketpair) behind this header.
 * One request, one response; the caller blocks. The SPE sees who calls from the channel, not
 * from anything the caller says (here every NSPE request is client id -1, as TF-M gives the
 * first non-secure client).
 */
#ifndef PSADEV_IPC_H
#define PSADEV_IPC_H

#include <stddef.h>
#include <stdint.h>

#define IPC_MAX_IOVEC 4
#define IPC_MAX_MSG 8192 /* all in- or out-vectors of one call together */

/* Service ids (the SID of PSA FF-M). */
enum ipc_service {
    IPC_SVC_CRYPTO = 1,
    IPC_SVC_ATTEST = 2,
    IPC_SVC_SENSOR = 3,
};

struct ipc_invec {
    const void *base;
    size_t len;
};

struct ipc_outvec {
    void *base;
    size_t len; /* in: capacity; out: bytes written */
};

/* Client side: sends the request and waits for the reply. Returns the service's status (a
 * psa_status_t), or PSA_ERROR_COMMUNICATION_FAILURE (-145) if the channel broke. */
int32_t ipc_call(int fd, uint32_t service, int32_t type, const struct ipc_invec *in, size_t n_in,
                 struct ipc_outvec *out, size_t n_out);

/* Server side: one request. The handler gets in/out vectors (out capacities as asked by the
 * client, bounded by IPC_MAX_MSG) and sets out[i].len to what it wrote. Returns 0 after a
 * reply, 1 when the client closed the channel, -1 on a broken or malformed message. */
typedef int32_t (*ipc_handler)(void *ctx, uint32_t service, int32_t type,
                               const struct ipc_invec *in, size_t n_in, struct ipc_outvec *out,
                               size_t n_out);
int ipc_serve_one(int fd, ipc_handler handler, void *ctx);

#endif
