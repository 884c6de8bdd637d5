/*
 * wsload: a WebSocket load generator for benchmarks/echo.py, in one thread (Linux, C99 + POSIX).
 *
 * Usage: wsload PORT, then commands on stdin, one per line, each answered by one line on stdout:
 *
 *   connect N                          open N more connections to 127.0.0.1:PORT  -> "ok"
 *   echo SIZE SECONDS MAXCOUNT         every open connection: request/response    -> "COUNT ELAPSED P50 P99"
 *   pipeline SIZE WINDOW SECONDS MAXCOUNT   first connection, WINDOW in flight    -> "COUNT ELAPSED P50 P99"
 *   close                              close every connection (code 1000)          -> "ok"
 *
 * COUNT is the messages that came back, ELAPSED the seconds the test took, P50 and P99 the
 * latencies of the round trips in microseconds (from queueing a message to receiving its echo,
 * CLOCK_MONOTONIC). A connection sends one more message for each that comes back while the
 * messages sent stay under MAXCOUNT and SECONDS have not passed; those in flight at the deadline
 * are waited for, and counted. Any error (bad handshake or frame, unexpected close or EOF, an
 * echo of the wrong length, 10 s without progress) prints "wsload: ..." on stderr and exits 1.
 *
 * Theory of operation: one epoll loop drives every connection, whose state goes CONNECTING ->
 * HANDSHAKE -> OPEN -> CLOSING -> CLOSED. Commands run the loop until their condition holds.
 * Reading is streaming: the frame header (at most 14 bytes) and control payloads (at most 125)
 * are kept per connection, data payloads are counted and dropped, so memory does not depend on
 * message sizes. Writing sends one shared buffer of random bytes as the payload of every data
 * frame, each frame with a fresh masking key: the server unmasks them to other random bytes,
 * which costs the client no masking work (only lengths are checked on the way back).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 4096
#define OPEN_BATCH 50 /* connections opened at once: the servers' listen backlog is 100 */
#define MAX_SIZE (16u * 1048576u) /* largest message, the benchmark's MAX_MESSAGE */
#define MAX_WINDOW 4096
#define STALL_NS 10000000000LL /* 10 s without progress is an error */
#define EOF_GRACE_NS 1000000000LL /* after the close frames, for the server's EOF */
#define HANDSHAKE_MAX 4096
#define SEND_BATCH 16 /* data frames per writev */
#define READ_BUFFER 262144

enum state { CONNECTING, HANDSHAKE, OPEN, CLOSING, CLOSED };

struct connection {
    int fd, number;
    enum state state;
    int want_out; /* EPOLLOUT registered */
    char key[25]; /* Sec-WebSocket-Key */
    char response[HANDSHAKE_MAX];
    size_t response_len;
    /* Reading: the frame being parsed. */
    uint8_t header[14];
    unsigned header_len, header_need;
    uint64_t remaining; /* payload bytes of the frame still to come */
    int opcode, fin, in_message;
    uint64_t message_len;
    uint8_t control[125];
    unsigned control_len;
    int close_received;
    /* Writing: data frames queued, the headers of the next ones, bytes sent of the first. */
    uint64_t queued;
    uint8_t headers[SEND_BATCH][14];
    unsigned headers_made;
    size_t sent;
    uint8_t out_control[131]; /* one pending control frame (a pong, or our close) */
    unsigned out_control_len, out_control_sent;
    /* Round trips: the send times of the messages in flight, oldest first. */
    int64_t *sent_at;
    unsigned capacity, window, first, in_flight;
};

static struct connection *connections[MAX_CONNECTIONS];
static int connection_count, epoll_fd, port;
static uint8_t read_buffer[READ_BUFFER];
static uint8_t *payload; /* random bytes, the payload of every data frame */
static size_t payload_size, header_size;
static uint64_t prng_state;
static int64_t last_progress;

/* The test running: echo or pipeline. */
static struct {
    int active;
    uint64_t size, max_count, sent, count;
    int64_t deadline;
    unsigned in_flight;
} test;

/* Latencies: log-linear buckets of nanoseconds, 64 per power of two (under 1% error). */
#define BUCKETS 2304
static uint64_t histogram[BUCKETS];

static void die(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("wsload: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    exit(1);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t prng(void) { /* splitmix64 */
    uint64_t z = (prng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void seed(void) {
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, &prng_state, sizeof prng_state) != (ssize_t)sizeof prng_state)
        die("cannot read /dev/urandom: %s", strerror(errno));
    close(fd);
}

static unsigned bucket(uint64_t ns) {
    if (ns > (1ULL << 40) - 1) ns = (1ULL << 40) - 1;
    if (ns < 128) return (unsigned)ns;
    unsigned shift = 63 - (unsigned)__builtin_clzll(ns) - 6;
    return (shift + 1) * 64 + (unsigned)((ns >> shift) - 64);
}

static double bucket_middle_us(unsigned index) {
    if (index < 128) return index / 1000.0;
    unsigned shift = index / 64 - 1;
    uint64_t low = (uint64_t)(index % 64 + 64) << shift;
    return (low + ((1ULL << shift) - 1) / 2.0) / 1000.0;
}

static double percentile_us(uint64_t total, double fraction) {
    if (!total) return 0.0;
    uint64_t rank = (uint64_t)(fraction * total + 0.999999), seen = 0;
    if (rank < 1) rank = 1;
    for (unsigned i = 0; i < BUCKETS; i++) {
        seen += histogram[i];
        if (seen >= rank) return bucket_middle_us(i);
    }
    return bucket_middle_us(BUCKETS - 1);
}

/* SHA-1 (FIPS 180-4) and base64, for Sec-WebSocket-Accept. */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const uint8_t *data, size_t len, uint8_t digest[20]) {
    uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    uint8_t block[64];
    uint64_t bits = (uint64_t)len * 8;
    size_t total = (len + 9 + 63) / 64 * 64;
    for (size_t offset = 0; offset < total; offset += 64) {
        for (size_t i = 0; i < 64; i++) {
            size_t at = offset + i;
            if (at < len) block[i] = data[at];
            else if (at == len) block[i] = 0x80;
            else if (at >= total - 8) block[i] = (uint8_t)(bits >> (8 * (total - 1 - at)));
            else block[i] = 0;
        }
        uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
                   (uint32_t)block[4 * i + 2] << 8 | block[4 * i + 3];
        for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) f = (b & c) | (~b & d), k = 0x5a827999;
            else if (i < 40) f = b ^ c ^ d, k = 0x6ed9eba1;
            else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8f1bbcdc;
            else f = b ^ c ^ d, k = 0xca62c1d6;
            uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d, d = c, c = rol(b, 30), b = a, a = t;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
    }
    for (int i = 0; i < 20; i++) digest[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void base64(const uint8_t *data, size_t len, char *out) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *out++ = alphabet[v >> 18], *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63], *out++ = alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < len ? (uint32_t)data[i + 1] << 8 : 0);
        *out++ = alphabet[v >> 18], *out++ = alphabet[(v >> 12) & 63];
        *out++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
    *out = '\0';
}

/* Event registration. */

static void watch(struct connection *c, int out) {
    if (c->want_out == out) return;
    struct epoll_event event = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &event) < 0)
        die("connection %d: epoll_ctl: %s", c->number, strerror(errno));
    c->want_out = out;
}

/* Writing. */

/* RFC 6455, 5.3: "The masking key is a 32-bit value chosen at random by the client. When
 * sending a frame, the client MUST mask it, even if the payload is empty"; the payload is
 * random bytes already (see the top of the file), so it goes out as it is. */
static void make_header(uint8_t *header, int opcode, uint64_t len) {
    unsigned at = 0;
    header[at++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        header[at++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        header[at++] = 0x80 | 126;
        header[at++] = (uint8_t)(len >> 8), header[at++] = (uint8_t)len;
    } else {
        header[at++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) header[at++] = (uint8_t)(len >> (8 * i));
    }
    uint32_t key = (uint32_t)prng();
    memcpy(header + at, &key, 4);
}

static size_t header_length(uint64_t len) { return 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + 4; }

static void queue_control(struct connection *c, int opcode, const uint8_t *data, unsigned len) {
    /* A control frame goes out between data frames: a later one replaces one not yet started
     * (RFC 6455, 5.5.3: a pong may answer only the most recent ping). */
    if (c->out_control_sent) return;
    make_header(c->out_control, opcode, len);
    const uint8_t *key = c->out_control + 2;
    for (unsigned i = 0; i < len; i++) c->out_control[6 + i] = data[i] ^ key[i % 4];
    c->out_control_len = 6 + len;
}

static int write_some(struct connection *c, const struct iovec *iov, int count, size_t *written) {
    ssize_t n = writev(c->fd, iov, count);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return 0;
        die("connection %d: write failed: %s", c->number, strerror(errno));
    }
    *written = (size_t)n;
    return 1;
}

static void flush(struct connection *c) {
    for (;;) {
        size_t written;
        if (c->out_control_len && (c->sent == 0 || c->out_control_sent)) {
            struct iovec iov = {c->out_control + c->out_control_sent,
                                c->out_control_len - c->out_control_sent};
            if (!write_some(c, &iov, 1, &written)) break;
            c->out_control_sent += (unsigned)written;
            if (c->out_control_sent == c->out_control_len)
                c->out_control_len = c->out_control_sent = 0;
            continue;
        }
        if (!c->queued) break;
        while (c->headers_made < SEND_BATCH && c->headers_made < c->queued)
            make_header(c->headers[c->headers_made++], 2, payload_size);
        struct iovec iov[2 * SEND_BATCH];
        size_t frame = header_size + payload_size, skip = c->sent;
        int count = 0;
        for (unsigned i = 0; i < c->headers_made; i++) {
            iov[count].iov_base = c->headers[i] + (skip < header_size ? skip : header_size);
            iov[count++].iov_len = skip < header_size ? header_size - skip : 0;
            size_t into = skip > header_size ? skip - header_size : 0;
            iov[count].iov_base = payload + into;
            iov[count++].iov_len = payload_size - into;
            skip = 0;
        }
        if (!write_some(c, iov, count, &written)) break;
        c->sent += written;
        unsigned done = 0;
        while (done < c->headers_made && c->sent >= frame) c->sent -= frame, done++;
        if (done) {
            memmove(c->headers, c->headers + done, (c->headers_made - done) * sizeof c->headers[0]);
            c->headers_made -= done;
            c->queued -= done;
        }
    }
    watch(c, c->queued > 0 || c->out_control_len > 0);
}

static void send_message(struct connection *c, int64_t now) {
    c->sent_at[(c->first + c->in_flight) % c->window] = now;
    c->in_flight++;
    test.in_flight++;
    test.sent++;
    c->queued++;
}

/* Reading. */

static void message_received(struct connection *c) {
    if (c->message_len != test.size || !c->in_flight)
        die("connection %d: sent %llu bytes, got %llu back", c->number,
            (unsigned long long)test.size, (unsigned long long)c->message_len);
    int64_t now = now_ns();
    histogram[bucket((uint64_t)(now - c->sent_at[c->first]))]++;
    c->first = (c->first + 1) % c->window;
    c->in_flight--;
    test.in_flight--;
    test.count++;
    last_progress = now;
    if (test.sent < test.max_count && now < test.deadline) send_message(c, now);
}

static void frame_received(struct connection *c) {
    switch (c->opcode) {
    case 0x0: case 0x1: case 0x2:
        if (!c->fin) return;
        c->in_message = 0;
        if (c->state == OPEN && test.active) message_received(c);
        else if (c->state == OPEN) die("connection %d: unexpected message", c->number);
        return;
    case 0x9: /* RFC 6455, 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong
                 frame in response" (unless it already received a Close frame). */
        if (c->state == OPEN) queue_control(c, 0xA, c->control, c->control_len);
        return;
    case 0xA:
        return;
    default: /* 0x8 */
        if (c->state != CLOSING) {
            unsigned code = c->control_len >= 2 ? (unsigned)c->control[0] << 8 | c->control[1] : 1005;
            int reason = c->control_len > 2 ? (int)c->control_len - 2 : 0;
            die("connection %d: the server closed the connection: code %u, reason \"%.*s\"",
                c->number, code, reason, (const char *)c->control + 2);
        }
        c->close_received = 1;
        last_progress = now_ns();
    }
}

/* RFC 6455, 5.2, one frame header at a time; fails the connection on any violation. */
static void header_received(struct connection *c) {
    uint8_t *h = c->header;
    if (c->header_len == 2) {
        c->fin = h[0] >> 7;
        c->opcode = h[0] & 0x0f;
        if (h[0] & 0x70) die("connection %d: reserved bits set (no extension negotiated)", c->number);
        /* "A server MUST NOT mask any frames that it sends to the client." */
        if (h[1] & 0x80) die("connection %d: masked frame from the server", c->number);
        if (c->opcode >= 0x8) {
            if (c->opcode > 0xA) die("connection %d: reserved opcode %d", c->number, c->opcode);
            if (!c->fin) die("connection %d: fragmented control frame", c->number);
            if ((h[1] & 0x7f) > 125) die("connection %d: control frame over 125 bytes", c->number);
        } else if (c->opcode > 0x2) {
            die("connection %d: reserved opcode %d", c->number, c->opcode);
        } else if ((c->opcode == 0) != c->in_message) {
            die("connection %d: %s", c->number,
                c->opcode ? "new message before the end of the last" : "continuation of nothing");
        }
        unsigned len7 = h[1] & 0x7f;
        c->header_need = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
        if (c->header_need > 2) return;
    }
    uint64_t len = h[1] & 0x7f;
    if (c->header_need == 4) {
        len = (uint64_t)h[2] << 8 | h[3];
        if (len < 126) die("connection %d: length not in its shortest form", c->number);
    } else if (c->header_need == 10) {
        len = 0;
        for (int i = 2; i < 10; i++) len = len << 8 | h[i];
        if (len >> 63) die("connection %d: length with its most significant bit set", c->number);
        if (len < 65536) die("connection %d: length not in its shortest form", c->number);
    }
    if (c->opcode < 0x8) {
        if (!c->in_message) c->message_len = 0;
        c->in_message = 1;
        c->message_len += len;
        if (c->message_len > MAX_SIZE || (test.active && c->message_len > test.size))
            die("connection %d: message of %llu bytes or more, %llu expected", c->number,
                (unsigned long long)c->message_len, (unsigned long long)test.size);
    }
    c->remaining = len;
    c->control_len = 0;
    c->header_len = 0;
    c->header_need = 2;
    if (!len) frame_received(c);
}

static void data_received(struct connection *c, const uint8_t *data, size_t len) {
    while (len) {
        if (c->remaining == 0 && c->header_len < c->header_need) {
            while (len && c->header_len < c->header_need) c->header[c->header_len++] = *data++, len--;
            if (c->header_len == c->header_need) header_received(c);
            continue;
        }
        size_t take = c->remaining < len ? (size_t)c->remaining : len;
        if (c->opcode >= 0x8) memcpy(c->control + c->control_len, data, take), c->control_len += (unsigned)take;
        data += take, len -= take, c->remaining -= take;
        if (!c->remaining) frame_received(c);
    }
}

/* Connecting: TCP, then the opening handshake (RFC 6455, 4.1). */

static void open_connection(int number) {
    struct connection *c = calloc(1, sizeof *c);
    if (!c) die("out of memory");
    c->number = number;
    c->header_need = 2;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&address, sizeof address) < 0 && errno != EINPROGRESS)
        die("connection %d: connect to 127.0.0.1:%d: %s", number, port, strerror(errno));
    struct epoll_event event = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &event) < 0) die("epoll_ctl: %s", strerror(errno));
    c->want_out = 1;
    c->state = CONNECTING;
    connections[connection_count++] = c;
}

static void send_request(struct connection *c) {
    int error = 0;
    socklen_t size = sizeof error;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &size);
    if (error) die("connection %d: connect to 127.0.0.1:%d: %s", c->number, port, strerror(error));
    /* "The request MUST include a header field with the name Sec-WebSocket-Key. The value of
     * this header field MUST be a nonce consisting of a randomly selected 16-byte value that
     * has been base64-encoded." */
    uint8_t nonce[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = prng();
        memcpy(nonce + i, &r, 8);
    }
    base64(nonce, 16, c->key);
    char request[512];
    int len = snprintf(request, sizeof request,
                       "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n", port, c->key);
    if (write(c->fd, request, (size_t)len) != len)  /* a fresh socket takes 200 bytes at once */
        die("connection %d: could not send the handshake request: %s", c->number, strerror(errno));
    c->state = HANDSHAKE;
    watch(c, 0);
}

/* The value of header field `name` in the response, or NULL; `end` points past it. */
static const char *header_value(const char *response, const char *name, const char **end) {
    size_t len = strlen(name);
    for (const char *line = strstr(response, "\r\n"); line && line[2] != '\r';
         line = strstr(line + 2, "\r\n")) {
        const char *field = line + 2;
        if (strncasecmp(field, name, len) == 0 && field[len] == ':') {
            const char *value = field + len + 1;
            while (*value == ' ' || *value == '\t') value++;
            *end = strstr(value, "\r\n");
            while (*end > value && ((*end)[-1] == ' ' || (*end)[-1] == '\t')) (*end)--;
            return value;
        }
    }
    return NULL;
}

static int value_has(const char *value, const char *end, const char *token) {
    size_t len = strlen(token);
    for (const char *at = value; at + len <= end; at++)
        if (strncasecmp(at, token, len) == 0) return 1;
    return 0;
}

static void check_response(struct connection *c) {
    const char *r = c->response, *end;
    if (strncmp(r, "HTTP/1.1 101 ", 13) != 0 && strncmp(r, "HTTP/1.1 101\r", 13) != 0)
        die("connection %d: handshake refused: %.*s", c->number, (int)strcspn(r, "\r\n"), r);
    /* "If the response lacks an |Upgrade| header field or the |Upgrade| header field contains
     * a value that is not an ASCII case-insensitive match for the value "websocket", the
     * client MUST _Fail the WebSocket Connection_" (and likewise for Connection: Upgrade). */
    const char *value = header_value(r, "Upgrade", &end);
    if (!value || (size_t)(end - value) != 9 || strncasecmp(value, "websocket", 9) != 0)
        die("connection %d: no Upgrade: websocket in the handshake response", c->number);
    value = header_value(r, "Connection", &end);
    if (!value || !value_has(value, end, "upgrade"))
        die("connection %d: no Connection: Upgrade in the handshake response", c->number);
    char expected[64], digest_b64[29];
    uint8_t digest[20];
    snprintf(expected, sizeof expected, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", c->key);
    sha1((const uint8_t *)expected, strlen(expected), digest);
    base64(digest, 20, digest_b64);
    value = header_value(r, "Sec-WebSocket-Accept", &end);
    if (!value || (size_t)(end - value) != 28 || memcmp(value, digest_b64, 28) != 0)
        die("connection %d: wrong or missing Sec-WebSocket-Accept (expected %s)", c->number,
            digest_b64);
    /* Nothing was offered: an extension or subprotocol in the response fails the connection. */
    if (header_value(r, "Sec-WebSocket-Extensions", &end))
        die("connection %d: the server chose an extension that was not offered", c->number);
    if (header_value(r, "Sec-WebSocket-Protocol", &end))
        die("connection %d: the server chose a subprotocol that was not offered", c->number);
}

static void read_response(struct connection *c) {
    ssize_t n = read(c->fd, c->response + c->response_len, HANDSHAKE_MAX - 1 - c->response_len);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        die("connection %d: read failed during the handshake: %s", c->number, strerror(errno));
    }
    if (n == 0) die("connection %d: EOF during the handshake", c->number);
    c->response_len += (size_t)n;
    c->response[c->response_len] = '\0';
    char *end = strstr(c->response, "\r\n\r\n");
    if (!end) {
        if (c->response_len == HANDSHAKE_MAX - 1)
            die("connection %d: handshake response over %d bytes", c->number, HANDSHAKE_MAX);
        return;
    }
    end[2] = '\0'; /* the header fields' lines, each ending with CRLF */
    check_response(c);
    c->state = OPEN;
    last_progress = now_ns();
    size_t used = (size_t)(end + 4 - c->response);
    if (used < c->response_len)  /* frames right after the response */
        data_received(c, (const uint8_t *)c->response + used, c->response_len - used);
}

/* The loop. */

static void readable(struct connection *c) {
    if (c->state == HANDSHAKE) {
        read_response(c);
        return;
    }
    for (int reads = 0; reads < 4; reads++) {
        ssize_t n = read(c->fd, read_buffer, sizeof read_buffer);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            if (c->state == CLOSING && c->close_received) n = 0; /* a reset after the close */
            else die("connection %d: read failed: %s", c->number, strerror(errno));
        }
        if (n == 0) {
            if (c->state != CLOSING) die("connection %d: unexpected EOF from the server", c->number);
            c->state = CLOSED;
            epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
            last_progress = now_ns();
            return;
        }
        data_received(c, read_buffer, (size_t)n);
        if ((size_t)n < sizeof read_buffer) return;
    }
}

static void poll_once(int64_t until) {
    struct epoll_event events[256];
    int64_t now = now_ns(), stall = last_progress + STALL_NS;
    if (now >= stall) die("no progress in %lld s", STALL_NS / 1000000000LL);
    int64_t wake = until < stall ? until : stall;
    int timeout = wake <= now ? 0 : (int)((wake - now + 999999) / 1000000);
    int n = epoll_wait(epoll_fd, events, 256, timeout);
    if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        struct connection *c = events[i].data.ptr;
        if (c->state == CLOSED) continue;
        if (c->state == CONNECTING) {
            send_request(c);
            continue;
        }
        if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) readable(c);
        if (c->state != CLOSED && c->state != HANDSHAKE) flush(c);
    }
}

/* Commands. */

static int opening(void) {
    for (int i = 0; i < connection_count; i++)
        if (connections[i]->state < OPEN) return 1;
    return 0;
}

static void command_connect(long count) {
    if (count < 1 || connection_count + count > MAX_CONNECTIONS)
        die("connect %ld: from 1 to %d connections in all", count, MAX_CONNECTIONS);
    long target = connection_count + count;
    last_progress = now_ns();
    while (connection_count < target) {
        long batch = target - connection_count < OPEN_BATCH ? target - connection_count : OPEN_BATCH;
        for (long i = 0; i < batch; i++) open_connection(connection_count);
        while (opening()) poll_once(INT64_MAX);
    }
    puts("ok");
}

static void set_payload(uint64_t size) {
    if (size > MAX_SIZE) die("message of %llu bytes: the limit is %u", (unsigned long long)size, MAX_SIZE);
    if (!payload || payload_size != size) {
        free(payload);
        payload = malloc(size ? size : 1);
        if (!payload) die("out of memory");
        for (size_t i = 0; i < size; i += 8) {
            uint64_t r = prng();
            memcpy(payload + i, &r, size - i < 8 ? size - i : 8);
        }
        payload_size = size;
    }
    header_size = header_length(size);
}

static void run_test(int users, unsigned window, uint64_t size, double seconds, uint64_t max_count) {
    if (users < 1 || connection_count < users) die("no connection open: send connect first");
    if (window < 1 || window > MAX_WINDOW) die("window %u: from 1 to %d", window, MAX_WINDOW);
    if (!(seconds >= 0 && seconds <= 86400)) die("%g seconds: from 0 to 86400", seconds);
    set_payload(size);
    memset(histogram, 0, sizeof histogram);
    int64_t start = now_ns();
    test.active = 1;
    test.size = size, test.max_count = max_count, test.sent = test.count = 0;
    test.in_flight = 0;
    test.deadline = start + (int64_t)(seconds * 1e9);
    last_progress = start;
    for (int i = 0; i < users; i++) {
        struct connection *c = connections[i];
        if (c->state != OPEN) die("connection %d is not open", c->number);
        if (c->capacity < window) {
            free(c->sent_at);
            c->sent_at = malloc(window * sizeof *c->sent_at);
            if (!c->sent_at) die("out of memory");
            c->capacity = window;
        }
        c->window = window, c->first = 0;
        for (unsigned j = 0; j < window && test.sent < max_count; j++) send_message(c, start);
        flush(c);
    }
    while (test.in_flight) poll_once(INT64_MAX);
    test.active = 0;
    double elapsed = (now_ns() - start) / 1e9;
    printf("%llu %.6f %.2f %.2f\n", (unsigned long long)test.count, elapsed,
           percentile_us(test.count, 0.50), percentile_us(test.count, 0.99));
}

static void command_close(void) {
    static const uint8_t normal[2] = {1000 >> 8, 1000 & 0xff};
    last_progress = now_ns();
    for (int i = 0; i < connection_count; i++) {
        struct connection *c = connections[i];
        c->state = CLOSING;
        queue_control(c, 0x8, normal, 2);
        flush(c);
    }
    /* RFC 6455, 7.1.1: the server closes the TCP connection first; wait for its EOF, or at
     * least its close frame and then EOF_GRACE_NS more, before closing the sockets. */
    int64_t deadline = now_ns() + STALL_NS;
    for (;;) {
        int waiting = 0, unanswered = 0;
        for (int i = 0; i < connection_count; i++) {
            waiting += connections[i]->state != CLOSED;
            unanswered += connections[i]->state != CLOSED && !connections[i]->close_received;
        }
        if (!waiting) break;
        int64_t now = now_ns();
        if (!unanswered && deadline > now + EOF_GRACE_NS) deadline = now + EOF_GRACE_NS;
        if (now >= deadline) {
            if (unanswered) die("%d connections had no close frame from the server in 10 s", unanswered);
            break;
        }
        last_progress = now_ns(); /* bounded by the deadline above instead */
        poll_once(deadline);
    }
    for (int i = 0; i < connection_count; i++) {
        close(connections[i]->fd);
        free(connections[i]->sent_at);
        free(connections[i]);
    }
    connection_count = 0;
    puts("ok");
}

int main(int argc, char **argv) {
    if (argc != 2 || (port = atoi(argv[1])) <= 0 || port > 65535) {
        fputs("usage: wsload PORT (then commands on stdin: see wsload.c)\n", stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    seed();
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0) die("epoll_create1: %s", strerror(errno));
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        char word[16];
        unsigned long long size, count;
        unsigned window;
        long n;
        double seconds;
        if (sscanf(line, "%15s", word) != 1) continue;
        if (strcmp(word, "connect") == 0 && sscanf(line, "%*s %ld", &n) == 1) {
            command_connect(n);
        } else if (strcmp(word, "echo") == 0 &&
                   sscanf(line, "%*s %llu %lf %llu", &size, &seconds, &count) == 3) {
            run_test(connection_count, 1, size, seconds, count);
        } else if (strcmp(word, "pipeline") == 0 &&
                   sscanf(line, "%*s %llu %u %lf %llu", &size, &window, &seconds, &count) == 4) {
            run_test(1, window, size, seconds, count);
        } else if (strcmp(word, "close") == 0) {
            command_close();
        } else {
            die("unknown command: %s", line);
        }
        fflush(stdout);
    }
    return 0;
}
