/* Escape attempts made from inside an instance (issue 22). Compiled with `gcc -static` by
 * crates/runtime/tests/root.rs and copied into the test image, because busybox can't make most
 * of these system calls. Each attempt prints one line, `NAME RESULT`, where RESULT is the
 * errno's name (`EPERM`), or `ok` when the call succeeded, or for reads `read N`.
 *
 *   probe battery HOST_PID DISK_MAJOR DISK_MINOR
 *   probe connect NAME IPV4 PORT
 *   probe nested      (what a developer VM's tools do: a user and mount namespace of their
 *                      own, root mapped in it, a tmpfs mounted there)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void report(const char *name, long rc) {
    if (rc < 0) {
        const char *e = strerrorname_np(errno);
        printf("%s %s\n", name, e ? e : "E?");
    } else {
        printf("%s ok\n", name);
    }
    fflush(stdout);
}

static void write_to(const char *name, const char *path) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) {
        report(name, -1);
        return;
    }
    long n = write(fd, "0", 1);
    report(name, n);
    close(fd);
}

/* Masked files read as empty: prints `read N` with the bytes a read returned. */
static void read_from(const char *name, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        report(name, -1);
        return;
    }
    char buf[256];
    printf("%s read %ld\n", name, (long)read(fd, buf, sizeof buf));
    fflush(stdout);
    close(fd);
}

static int battery(pid_t host_pid, unsigned major_, unsigned minor_) {
    mkdir("/mnt", 0755);
    report("mount_tmpfs", mount("none", "/mnt", "tmpfs", 0, NULL));
    report("mount_block_device", mount("/dev/vda", "/mnt", "ext4", MS_RDONLY, NULL));
    report("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
    report("init_module", syscall(SYS_init_module, "", 0, ""));
    int self = open("/proc/self/exe", O_RDONLY);
    report("finit_module", syscall(SYS_finit_module, self, "", 0));
    close(self);
    report("unshare_user", unshare(CLONE_NEWUSER));
    report("unshare_user_mount", unshare(CLONE_NEWUSER | CLONE_NEWNS));
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        /* In a new user namespace (only if the filter let us): try the mount. */
        _exit(mount("none", "/mnt", "tmpfs", 0, NULL) == 0 ? 0 : 1);
    }
    if (pid > 0) waitpid(pid, NULL, 0);
    report("clone_newuser", pid);
    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 1));
    report("add_key", syscall(SYS_add_key, "user", "spindle", "x", 1, -3));
    union bpf_attr battr;
    memset(&battr, 0, sizeof battr);
    battr.map_type = BPF_MAP_TYPE_ARRAY;
    battr.key_size = 4;
    battr.value_size = 4;
    battr.max_entries = 1;
    report("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &battr, sizeof battr));
    struct perf_event_attr pattr;
    memset(&pattr, 0, sizeof pattr);
    pattr.size = sizeof pattr;
    pattr.type = PERF_TYPE_SOFTWARE;
    pattr.config = PERF_COUNT_SW_CPU_CLOCK;
    report("perf_event_open", syscall(SYS_perf_event_open, &pattr, 0, -1, -1, 0));
    struct io_uring_params uparams;
    memset(&uparams, 0, sizeof uparams);
    report("io_uring_setup", syscall(SYS_io_uring_setup, 4, &uparams));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    report("ptrace_host_process", ptrace(PTRACE_ATTACH, host_pid, 0, 0));
    report("kill_host_process", kill(host_pid, 0));
    report("open_dev_mem", open("/dev/mem", O_RDONLY));
    report("mknod_dev_mem", mknod("/tmp/mem", S_IFCHR | 0600, makedev(1, 1)));
    report("mknod_host_disk", mknod("/tmp/disk", S_IFBLK | 0600, makedev(major_, minor_)));
    read_from("read_proc_kcore", "/proc/kcore");
    read_from("read_proc_keys", "/proc/keys");
    read_from("read_proc_timer_list", "/proc/timer_list");
    DIR *fw = opendir("/sys/firmware");
    if (!fw) {
        report("list_sys_firmware", -1);
    } else {
        int n = 0;
        struct dirent *d;
        while ((d = readdir(fw)))
            if (d->d_name[0] != '.') n++;
        printf("list_sys_firmware entries %d\n", n);
        closedir(fw);
    }
    write_to("write_proc_sys_kernel", "/proc/sys/kernel/hostname");
    write_to("write_sysrq_trigger", "/proc/sysrq-trigger");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    report("clock_settime", clock_settime(CLOCK_REALTIME, &now));
    struct timeval tv = {now.tv_sec, 0};
    report("settimeofday", settimeofday(&tv, NULL));
    report("reboot", syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
                             LINUX_REBOOT_CMD_CAD_OFF, 0));
    int ns = open("/proc/1/ns/net", O_RDONLY);
    report("setns", setns(ns, 0));
    return 0;
}

/* A TCP connect with a one-second limit: ETIMEDOUT when nothing answers. */
static int connect_to(const char *name, const char *ip, int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", ip);
        return 2;
    }
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int rc = connect(s, (struct sockaddr *)&a, sizeof a);
    if (rc < 0 && errno == EINPROGRESS) {
        struct pollfd p = {s, POLLOUT, 0};
        if (poll(&p, 1, 1000) == 0) {
            errno = ETIMEDOUT;
        } else {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
            errno = err;
            rc = err ? -1 : 0;
        }
    }
    report(name, rc);
    return 0;
}

/* The battery really mounts, writes /proc/sys and sets the clock where it is allowed to:
 * refuse to run anywhere but inside an instance (whose pid 1 is Spindle's init). */
static int inside_instance(void) {
    char comm[32] = {0};
    int fd = open("/proc/1/comm", O_RDONLY);
    if (fd < 0) return 0;
    long n = read(fd, comm, sizeof comm - 1);
    close(fd);
    return n > 0 && strcmp(comm, "spindle-init\n") == 0;
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -1;
    long n = write(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    errno = saved;
    return n < 0 ? -1 : 0;
}

/* `unshare -Urm` and a mount, step by step; each step reported, the first failure ends it. */
static int nested(void) {
    long rc = unshare(CLONE_NEWUSER | CLONE_NEWNS);
    report("nested_unshare", rc);
    if (rc < 0) return 0;
    rc = write_file("/proc/self/setgroups", "deny");
    if (rc == 0) rc = write_file("/proc/self/uid_map", "0 0 1");
    if (rc == 0) rc = write_file("/proc/self/gid_map", "0 0 1");
    report("nested_map_root", rc);
    if (rc < 0) return 0;
    struct stat before, after;
    stat("/tmp", &before);
    rc = mount("none", "/tmp", "tmpfs", 0, NULL);
    report("nested_mount_tmpfs", rc);
    if (rc == 0) {
        /* A new filesystem is on /tmp now: another device. */
        errno = EINVAL;
        report("nested_tmpfs_is_mounted",
               stat("/tmp", &after) == 0 && after.st_dev != before.st_dev ? 0 : -1);
        report("nested_umount", umount2("/tmp", 0));
    }
    return 0;
}

int main(int argc, char **argv) {
    if (!inside_instance()) {
        fprintf(stderr, "probe: not inside a Spindle instance (pid 1 is not spindle-init)\n");
        return 3;
    }
    if (argc == 5 && strcmp(argv[1], "battery") == 0)
        return battery(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    if (argc == 5 && strcmp(argv[1], "connect") == 0)
        return connect_to(argv[2], argv[3], atoi(argv[4]));
    if (argc == 2 && strcmp(argv[1], "nested") == 0)
        return nested();
    fprintf(stderr, "usage: probe battery HOST_PID MAJOR MINOR | connect NAME IP PORT | nested\n");
    return 2;
}
