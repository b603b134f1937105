/* The cost of having any seccomp filter at all, on this kernel: the same read+write loop as
 * `bench/run instances`' syscall loop (one byte from /dev/zero to /dev/null per iteration),
 * with no filter, with a one-instruction allow-all filter (which the kernel's action cache
 * answers without running BPF), and with an allow-all filter that loads an argument (which
 * the cache can't answer, so the BPF runs on every call). Spindle's default filter is a
 * cacheable one for read and write, so its figure should sit beside the allow-all one.
 * Usage: seccomp_floor MODE ITERATIONS   (MODE: none | cached | uncached); prints ns per call. */
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int install(const char *mode) {
    struct sock_filter cached[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    /* offsetof(struct seccomp_data, args[0]) is 16 */
    struct sock_filter uncached[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 16),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog;
    if (strcmp(mode, "none") == 0) return 0;
    if (strcmp(mode, "cached") == 0) {
        prog.len = 1;
        prog.filter = cached;
    } else if (strcmp(mode, "uncached") == 0) {
        prog.len = 2;
        prog.filter = uncached;
    } else {
        fprintf(stderr, "seccomp_floor: unknown mode '%s' (expected none, cached or uncached)\n", mode);
        return -1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
        perror("seccomp_floor: installing the filter");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: seccomp_floor none|cached|uncached ITERATIONS\n");
        return 2;
    }
    long n = atol(argv[2]);
    if (n <= 0 || install(argv[1]) != 0) return 2;
    int in = open("/dev/zero", O_RDONLY), out = open("/dev/null", O_WRONLY);
    if (in < 0 || out < 0) {
        perror("seccomp_floor: open");
        return 2;
    }
    char c;
    double t = seconds();
    for (long i = 0; i < n; i++) {
        if (read(in, &c, 1) != 1 || write(out, &c, 1) != 1) {
            perror("seccomp_floor: read/write");
            return 2;
        }
    }
    printf("%.1f\n", (seconds() - t) * 1e9 / (2.0 * (double)n));
    return 0;
}
