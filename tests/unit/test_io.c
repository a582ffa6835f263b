#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cksum.h"
#include "io.h"

Test(io, mem_src_reads_and_stops_at_end)
{
	const char data[] = "0123456789";
	io_src s;
	io_src_from_mem(&s, data, 10);
	char buf[16] = {0};
	cr_assert_eq(s.pread(&s, buf, 4, 3), 4);
	cr_assert_arr_eq(buf, "3456", 4);
	cr_assert_eq(s.pread(&s, buf, 16, 8), 2);
	cr_assert_eq(s.pread(&s, buf, 4, 10), 0);
	cr_assert_eq(io_pread_full(&s, buf, 4, 8), -EIO);
	cr_assert_eq(io_pread_full(&s, buf, 2, 8), 0);
}

Test(io, fd_src_roundtrip)
{
	char path[] = "/tmp/tpdefs-io-XXXXXX";
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	unlink(path);
	uint8_t data[100000];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	cr_assert_eq(io_pwrite_full(fd, data, sizeof data, 0), 0);
	io_src s;
	io_src_from_fd(&s, fd, sizeof data);
	uint8_t back[sizeof data];
	cr_assert_eq(io_pread_full(&s, back, sizeof back, 0), 0);
	cr_assert_arr_eq(back, data, sizeof data);
	cr_assert_eq(io_pread_fd_full(fd, back, 10, sizeof data - 5), -EIO);
	close(fd);
}

Test(cksum, streaming_equals_oneshot)
{
	uint8_t data[5000];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i ^ (i >> 3));
	cksum_state *st = cksum_new();
	cr_assert_not_null(st);
	cksum_update(st, data, 1234);
	cksum_update(st, data + 1234, sizeof data - 1234);
	cr_assert_eq(cksum_digest(st), cksum64(data, sizeof data));
	cksum_free(st);
	data[17] ^= 1;
	cr_assert_neq(cksum64(data, sizeof data), cksum64(data, sizeof data - 1));
}
