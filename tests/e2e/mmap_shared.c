/* mmap_shared FILE TEXT: writes TEXT into FILE through a MAP_SHARED mapping, as
 * linkers, databases and editors do. The e2e tests run it in a container on a
 * shared folder: the kernel refuses such maps on files opened for direct I/O. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: mmap_shared FILE TEXT\n");
        return 2;
    }
    size_t len = strlen(argv[2]);
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)len) < 0) {
        perror(argv[1]);
        return 1;
    }
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    memcpy(map, argv[2], len);
    if (msync(map, len, MS_SYNC) < 0) {
        perror("msync");
        return 1;
    }
    munmap(map, len);
    return close(fd) < 0;
}
