/* File system work for bench/file_sharing.py, one compiled program so that the
 * same code runs on a shared folder and on the guest's own disk.
 *
 *   fsbench seq DIR MIB        write MIB MiB (fsync), drop caches, read it back
 *   fsbench small DIR N        N files: create+write 4 KiB, stat all, delete all
 *   fsbench tree DIR N         make a tree of N files (not timed)
 *   fsbench walk DIR           lstat every entry of the tree, as `git status` does
 *
 * Prints "name seconds" lines. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *path) {
    perror(what);
    fprintf(stderr, "  at %s\n", path);
    exit(1);
}

static void drop_caches(void) {
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd >= 0) {
        sync();
        if (write(fd, "3\n", 2) < 0) perror("drop_caches");
        close(fd);
    }
}

static void seq(const char *dir, long mib) {
    char path[4096];
    static char buf[1 << 20];
    memset(buf, 0x5a, sizeof buf);
    snprintf(path, sizeof path, "%s/seq.bin", dir);
    double t = now();
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0) die("open", path);
    for (long i = 0; i < mib; i++)
        if (write(fd, buf, sizeof buf) != sizeof buf) die("write", path);
    if (fsync(fd) < 0) die("fsync", path);
    close(fd);
    printf("seq_write %.3f\n", now() - t);
    drop_caches();
    t = now();
    fd = open(path, O_RDONLY);
    if (fd < 0) die("open", path);
    long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) total += n;
    close(fd);
    if (total != mib << 20) die("short read", path);
    printf("seq_read %.3f\n", now() - t);
    unlink(path);
}

static void small(const char *dir, int count) {
    char path[4096];
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    double t = now();
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/s%06d", dir, i);
        int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        if (fd < 0) die("open", path);
        if (write(fd, buf, sizeof buf) != sizeof buf) die("write", path);
        close(fd);
    }
    printf("small_create %.3f\n", now() - t);
    t = now();
    struct stat st;
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/s%06d", dir, i);
        if (stat(path, &st) < 0 || st.st_size != sizeof buf) die("stat", path);
    }
    printf("small_stat %.3f\n", now() - t);
    t = now();
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/s%06d", dir, i);
        if (unlink(path) < 0) die("unlink", path);
    }
    printf("small_delete %.3f\n", now() - t);
}

static void tree(const char *dir, int count) {
    char path[4096];
    /* 100 files per folder, 10 folders per parent: like a source tree. */
    mkdir(dir, 0755);
    for (int i = 0; i < count; i++) {
        int d = i / 100;
        snprintf(path, sizeof path, "%s/t%02d", dir, d / 10);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/t%02d/d%03d", dir, d / 10, d);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/t%02d/d%03d/f%05d", dir, d / 10, d, i);
        int fd = open(path, O_CREAT | O_WRONLY, 0644);
        if (fd < 0) die("open", path);
        close(fd);
    }
}

static long walk_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) die("opendir", dir);
    long n = 0;
    struct dirent *e;
    char path[4096];
    struct stat st;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &st) < 0) die("lstat", path);
        n++;
        if (S_ISDIR(st.st_mode)) n += walk_dir(path);
    }
    closedir(d);
    return n;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: fsbench seq|small|tree|walk DIR [N]\n");
        return 2;
    }
    const char *dir = argv[2];
    long n = argc > 3 ? atol(argv[3]) : 0;
    if (!strcmp(argv[1], "seq")) seq(dir, n);
    else if (!strcmp(argv[1], "small")) small(dir, (int)n);
    else if (!strcmp(argv[1], "tree")) tree(dir, (int)n);
    else if (!strcmp(argv[1], "walk")) {
        double t = now();
        long entries = walk_dir(dir);
        printf("walk %.3f\nwalk_entries %ld\n", now() - t, entries);
    } else return 2;
    return 0;
}
