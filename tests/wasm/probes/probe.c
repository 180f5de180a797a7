/*
 * What a C program (wasi-libc) sees of mesh's sandbox: files, directories, the
 * environment, stdio, clocks and sockets, each printed with the errno it got. Its output
 * under mesh must equal its output under wasmtime's own WASI (probe_c.expect, written by
 * tools/wasi-ref). Build: make -C tests/wasm/probes (clang, lld, wasi-libc).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void report(const char *what, int ok) {
    if (ok)
        printf("%s: ok\n", what);
    else
        printf("%s: errno %d (%s)\n", what, errno, strerror(errno));
}

int main(int argc, char **argv) {
    char line[256] = {0};
    printf("argc %d argv[0] %s\n", argc, argc > 0 ? argv[0] : "-");
    printf("HOME %s PATH %s\n", getenv("HOME") ? getenv("HOME") : "(unset)", getenv("PATH") ? getenv("PATH") : "(unset)");
    if (fgets(line, sizeof line, stdin))
        printf("stdin: %s", line);
    errno = 0;
    report("fopen /etc/passwd", fopen("/etc/passwd", "r") != NULL);
    errno = 0;
    report("open out.txt for writing", open("out.txt", O_CREAT | O_WRONLY, 0644) >= 0);
    errno = 0;
    report("opendir .", opendir(".") != NULL);
    errno = 0;
    report("mkdir d", mkdir("d", 0755) == 0);
    errno = 0;
    report("unlink x", unlink("x") == 0);
    errno = 0;
    report("lseek stdin", lseek(0, 0, SEEK_SET) >= 0);
    struct stat st;
    errno = 0;
    report("fstat stdout", fstat(1, &st) == 0);
    printf("stdout is a tty: %d, a fifo: %d, a char device: %d\n", isatty(1), S_ISFIFO(st.st_mode), S_ISCHR(st.st_mode));
    errno = 0;
    report("fstat fd 3", fstat(3, &st) == 0);
    struct timespec ts;
    errno = 0;
    report("clock_gettime monotonic", clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
    errno = 0;
    report("clock_gettime realtime", clock_gettime(CLOCK_REALTIME, &ts) == 0);
    errno = 0;
    report("shutdown stdout", shutdown(1, SHUT_RDWR) == 0);
    errno = 0;
    report("recv fd 3", recv(3, line, 1, 0) >= 0);
    errno = 0;
    report("close fd 3", close(3) == 0);
    fflush(stdout);
    return 0;
}
