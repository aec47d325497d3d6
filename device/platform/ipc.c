/*
 * ipc.c: the message format of ipc.h.
 *
 *   request:  u32 magic, u32 service, i32 type, u32 n_in, u32 n_out, u32 in_len[4],
 *             u32 out_cap[4], then the in-vectors back to back
 *   response: u32 magic, i32 status, u32 out_len[4], then the out-vectors back to back
 *
 * SOCK_SEQPACKET keeps message boundaries, so one send is one message. Every length is
 * checked against what arrived before it is used: the SPE treats the NSPE as untrusted.
 */
#include "ipc.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define REQ_MAGIC 0x50534131u /* "PSA1" */
#define RSP_MAGIC 0x50534132u
#define COMM_FAILURE (-145)   /* PSA_ERROR_COMMUNICATION_FAILURE */
#define INVALID_ARG (-135)    /* PSA_ERROR_INVALID_ARGUMENT */

struct req_hdr {
    uint32_t magic;
    uint32_t service;
    int32_t type;
    uint32_t n_in, n_out;
    uint32_t in_len[IPC_MAX_IOVEC];
    uint32_t out_cap[IPC_MAX_IOVEC];
};

struct rsp_hdr {
    uint32_t magic;
    int32_t status;
    uint32_t out_len[IPC_MAX_IOVEC];
};

static ssize_t send_msg(int fd, struct iovec *iov, int n)
{
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t r;
    do {
        r = sendmsg(fd, &m, MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    return r;
}

static ssize_t recv_msg(int fd, void *buf, size_t cap)
{
    ssize_t r;
    do {
        r = recv(fd, buf, cap, MSG_TRUNC);
    } while (r < 0 && errno == EINTR);
    return r;
}

int32_t ipc_call(int fd, uint32_t service, int32_t type, const struct ipc_invec *in, size_t n_in,
                 struct ipc_outvec *out, size_t n_out)
{
    if (n_in > IPC_MAX_IOVEC || n_out > IPC_MAX_IOVEC)
        return INVALID_ARG;
    struct req_hdr h = {.magic = REQ_MAGIC, .service = service, .type = type,
                        .n_in = (uint32_t)n_in, .n_out = (uint32_t)n_out};
    struct iovec iov[1 + IPC_MAX_IOVEC];
    size_t total_in = 0, total_out = 0;
    iov[0] = (struct iovec){&h, sizeof(h)};
    for (size_t i = 0; i < n_in; i++) {
        h.in_len[i] = (uint32_t)in[i].len;
        total_in += in[i].len;
        iov[1 + i] = (struct iovec){(void *)in[i].base, in[i].len};
    }
    for (size_t i = 0; i < n_out; i++) {
        h.out_cap[i] = (uint32_t)out[i].len;
        total_out += out[i].len;
    }
    if (total_in > IPC_MAX_MSG || total_out > IPC_MAX_MSG)
        return INVALID_ARG;
    if (send_msg(fd, iov, 1 + (int)n_in) != (ssize_t)(sizeof(h) + total_in))
        return COMM_FAILURE;
    static _Thread_local uint8_t buf[sizeof(struct rsp_hdr) + IPC_MAX_MSG];
    ssize_t n = recv_msg(fd, buf, sizeof(buf));
    struct rsp_hdr r;
    if (n < (ssize_t)sizeof(r) || (size_t)n > sizeof(buf))
        return COMM_FAILURE;
    memcpy(&r, buf, sizeof(r));
    if (r.magic != RSP_MAGIC)
        return COMM_FAILURE;
    size_t off = sizeof(r);
    for (size_t i = 0; i < n_out; i++) {
        if (r.out_len[i] > out[i].len || r.out_len[i] > (size_t)n - off)
            return COMM_FAILURE;
        memcpy(out[i].base, buf + off, r.out_len[i]);
        out[i].len = r.out_len[i];
        off += r.out_len[i];
    }
    return r.status;
}

int ipc_serve_one(int fd, ipc_handler handler, void *ctx)
{
    static uint8_t in_buf[sizeof(struct req_hdr) + IPC_MAX_MSG];
    static uint8_t out_buf[IPC_MAX_MSG];
    ssize_t n = recv_msg(fd, in_buf, sizeof(in_buf));
    if (n == 0)
        return 1;
    struct req_hdr h;
    if (n < (ssize_t)sizeof(h) || (size_t)n > sizeof(in_buf))
        return -1;
    memcpy(&h, in_buf, sizeof(h));
    if (h.magic != REQ_MAGIC || h.n_in > IPC_MAX_IOVEC || h.n_out > IPC_MAX_IOVEC)
        return -1;
    struct ipc_invec in[IPC_MAX_IOVEC];
    struct ipc_outvec out[IPC_MAX_IOVEC];
    size_t off = sizeof(h), out_off = 0;
    for (uint32_t i = 0; i < h.n_in; i++) {
        if (h.in_len[i] > (size_t)n - off)
            return -1;
        in[i] = (struct ipc_invec){in_buf + off, h.in_len[i]};
        off += h.in_len[i];
    }
    if (off != (size_t)n)
        return -1;
    for (uint32_t i = 0; i < h.n_out; i++) {
        if (h.out_cap[i] > sizeof(out_buf) - out_off)
            return -1;
        out[i] = (struct ipc_outvec){out_buf + out_off, h.out_cap[i]};
        out_off += h.out_cap[i];
    }
    int32_t status = handler(ctx, h.service, h.type, in, h.n_in, out, h.n_out);
    /* the reply packs the out-vectors back to back */
    struct rsp_hdr r = {.magic = RSP_MAGIC, .status = status};
    struct iovec iov[1 + IPC_MAX_IOVEC];
    size_t total = 0;
    iov[0] = (struct iovec){&r, sizeof(r)};
    for (uint32_t i = 0; i < h.n_out; i++) {
        if (out[i].len > h.out_cap[i])
            out[i].len = 0;
        r.out_len[i] = (uint32_t)out[i].len;
        iov[1 + i] = (struct iovec){out[i].base, out[i].len};
        total += out[i].len;
    }
    if (send_msg(fd, iov, 1 + (int)h.n_out) != (ssize_t)(sizeof(r) + total))
        return -1;
    memset(out_buf, 0, out_off); /* outputs may have held key material */
    return 0;
}
