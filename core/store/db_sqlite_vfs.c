/* db_sqlite_vfs.c - the page-checksum VFS shim (see db_sqlite_vfs.h).
 *
 * Ownership: the sqlite3_vfs below is registered once per process (pthread_once) and never
 * unregistered: SQLite's VFS list is process-wide by design, and the shim has no state of its own
 * beyond it. Each open file's flag lives in its own dbvfs_file, used by the one connection that
 * opened it (SQLite serialises calls on a file). */
#include "db_sqlite_vfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <string.h>

#include "le.h"

#define VFS_NAME "tpdefs-cksum"

typedef struct dbvfs_file {
	sqlite3_file base; /* first: SQLite calls us with a sqlite3_file * */
	int sums;          /* the header reserves DBVFS_RESERVE bytes a page: keep checksums */
	int noverify;      /* a repair reads pages whose sums are stale (DBVFS_NOVERIFY) */
} dbvfs_file;

/* The default VFS's own file object follows ours, aligned. */
#define SUB_OFF ((sizeof(dbvfs_file) + 15) & ~(size_t)15)
#define SUB(f) ((sqlite3_file *)((char *)(f) + SUB_OFF))
#define LOWER(v) ((sqlite3_vfs *)(v)->pAppData)

void dbvfs_page_sum(const uint8_t *page, size_t pgsz, uint32_t pgno, uint8_t out[8])
{
	uint32_t s1 = pgno, s2 = 0;
	for (size_t i = 0; i + 4 <= pgsz - DBVFS_RESERVE; i += 4) {
		s1 += le_get32(page + i);
		s2 += s1;
	}
	le_put32(out, s1);
	le_put32(out + 4, s2);
}

/* A read or write of exactly one page at a page boundary: its page number, else 0. */
static uint32_t whole_page(int amt, sqlite3_int64 off)
{
	if (amt < 512 || amt > 65536 || (amt & (amt - 1)) || off < 0 || off % amt)
		return 0;
	return (uint32_t)(off / amt) + 1;
}

/* Page 1 says whether this database keeps checksums: header byte 20 = reserved bytes a page. */
static void note_header(dbvfs_file *p, const void *buf, int amt, sqlite3_int64 off)
{
	if (off == 0 && amt >= 100 && !memcmp(buf, "SQLite format 3", 16))
		p->sums = ((const uint8_t *)buf)[20] == DBVFS_RESERVE;
}

static int f_close(sqlite3_file *f)
{
	return SUB(f)->pMethods->xClose(SUB(f));
}

static int all_zero(const uint8_t *b, int n)
{
	for (int i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

static int f_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	dbvfs_file *p = (dbvfs_file *)f;
	int rc = SUB(f)->pMethods->xRead(SUB(f), buf, amt, off);
	/* A short read is zero-filled past the end: a page wholly past it is all zeros (SQLite asks
	 * for such pages), but a page the file cuts short is damage and is checked like any other. */
	if (rc == SQLITE_IOERR_SHORT_READ && all_zero(buf, amt))
		return rc;
	if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
		return rc;
	note_header(p, buf, amt, off);
	uint32_t pgno = whole_page(amt, off);
	if (p->sums && !p->noverify && pgno) {
		uint8_t s[DBVFS_RESERVE];
		dbvfs_page_sum(buf, (size_t)amt, pgno, s);
		if (memcmp((uint8_t *)buf + amt - DBVFS_RESERVE, s, DBVFS_RESERVE) != 0)
			return SQLITE_IOERR_DATA;
	}
	return rc;
}

/* The checksum goes into the caller's page buffer: the reserved bytes are ours (SQLite never
 * uses them), and the pager's copy then matches what is on disk. */
static int f_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
	dbvfs_file *p = (dbvfs_file *)f;
	note_header(p, buf, amt, off);
	uint32_t pgno = whole_page(amt, off);
	if (p->sums && pgno)
		dbvfs_page_sum(buf, (size_t)amt, pgno, (uint8_t *)buf + amt - DBVFS_RESERVE);
	return SUB(f)->pMethods->xWrite(SUB(f), buf, amt, off);
}

static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return SUB(f)->pMethods->xTruncate(SUB(f), size);
}

static int f_sync(sqlite3_file *f, int flags)
{
	return SUB(f)->pMethods->xSync(SUB(f), flags);
}

static int f_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return SUB(f)->pMethods->xFileSize(SUB(f), size);
}

static int f_lock(sqlite3_file *f, int lk)
{
	return SUB(f)->pMethods->xLock(SUB(f), lk);
}

static int f_unlock(sqlite3_file *f, int lk)
{
	return SUB(f)->pMethods->xUnlock(SUB(f), lk);
}

static int f_reserved(sqlite3_file *f, int *out)
{
	return SUB(f)->pMethods->xCheckReservedLock(SUB(f), out);
}

/* The header on disk, at the start of a checkpoint: a VACUUM by another connection may have
 * turned sums on since this one last read page 1 (and the checkpoint need not write page 1). */
static void reread_header(dbvfs_file *p, sqlite3_file *f)
{
	uint8_t h[100];
	if (SUB(f)->pMethods->xRead(SUB(f), h, sizeof h, 0) == SQLITE_OK)
		note_header(p, h, sizeof h, 0);
}

static int f_control(sqlite3_file *f, int op, void *arg)
{
	dbvfs_file *p = (dbvfs_file *)f;
	if (op == DBVFS_FCNTL) {
		int *v = arg;
		if (*v >= 0) {
			if (*v & DBVFS_SUMS)
				p->sums = 1;
			if (*v & DBVFS_NOVERIFY)
				p->noverify = 1;
			else if (*v & DBVFS_VERIFY)
				p->noverify = 0;
		}
		*v = (p->sums ? DBVFS_SUMS : 0) | (p->sums && !p->noverify ? DBVFS_VERIFY : 0);
		return SQLITE_OK;
	}
	if (op == SQLITE_FCNTL_CKPT_START)
		reread_header(p, f);
	return SUB(f)->pMethods->xFileControl(SUB(f), op, arg);
}

static int f_sector(sqlite3_file *f)
{
	return SUB(f)->pMethods->xSectorSize(SUB(f));
}

static int f_devchar(sqlite3_file *f)
{
	int c = SUB(f)->pMethods->xDeviceCharacteristics(SUB(f));
#ifdef SQLITE_IOCAP_SUBPAGE_READ
	c &= ~SQLITE_IOCAP_SUBPAGE_READ; /* every page read whole, so that it can be checked */
#endif
	return c;
}

static int f_shmmap(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
	return SUB(f)->pMethods->xShmMap(SUB(f), pg, pgsz, extend, pp);
}

static int f_shmlock(sqlite3_file *f, int off, int n, int flags)
{
	return SUB(f)->pMethods->xShmLock(SUB(f), off, n, flags);
}

static void f_shmbarrier(sqlite3_file *f)
{
	SUB(f)->pMethods->xShmBarrier(SUB(f));
}

static int f_shmunmap(sqlite3_file *f, int del)
{
	return SUB(f)->pMethods->xShmUnmap(SUB(f), del);
}

/* No memory-mapped pages while checksums are kept: a mapped page is read without xRead. */
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	const sqlite3_io_methods *m = SUB(f)->pMethods;
	if (((dbvfs_file *)f)->sums || m->iVersion < 3 || !m->xFetch) {
		*pp = NULL;
		return SQLITE_OK;
	}
	return m->xFetch(SUB(f), off, amt, pp);
}

static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	const sqlite3_io_methods *m = SUB(f)->pMethods;
	return m->iVersion >= 3 && m->xUnfetch ? m->xUnfetch(SUB(f), off, p) : SQLITE_OK;
}

static const sqlite3_io_methods file_methods = {
	3,	    f_close,	f_read,	   f_write,	  f_truncate,	f_sync,	       f_size,
	f_lock,	    f_unlock,	f_reserved, f_control,	  f_sector,	f_devchar,     f_shmmap,
	f_shmlock,  f_shmbarrier, f_shmunmap, f_fetch,	  f_unfetch,
};

static int v_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *outflags)
{
	sqlite3_vfs *low = LOWER(v);
	if (!(flags & SQLITE_OPEN_MAIN_DB))
		return low->xOpen(low, name, f, flags, outflags); /* WAL, journals, temp files */
	dbvfs_file *p = (dbvfs_file *)f;
	memset(p, 0, sizeof *p);
	int rc = low->xOpen(low, name, SUB(f), flags, outflags);
	/* pMethods only once the lower file is open: SQLite calls xClose iff it is set */
	p->base.pMethods = rc == SQLITE_OK ? &file_methods : NULL;
	return rc;
}

static int v_delete(sqlite3_vfs *v, const char *name, int syncdir)
{
	return LOWER(v)->xDelete(LOWER(v), name, syncdir);
}

static int v_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
	return LOWER(v)->xAccess(LOWER(v), name, flags, out);
}

static int v_fullpath(sqlite3_vfs *v, const char *name, int n, char *out)
{
	return LOWER(v)->xFullPathname(LOWER(v), name, n, out);
}

static void *v_dlopen(sqlite3_vfs *v, const char *name)
{
	return LOWER(v)->xDlOpen(LOWER(v), name);
}

static void v_dlerror(sqlite3_vfs *v, int n, char *msg)
{
	LOWER(v)->xDlError(LOWER(v), n, msg);
}

static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
	return LOWER(v)->xDlSym(LOWER(v), h, sym);
}

static void v_dlclose(sqlite3_vfs *v, void *h)
{
	LOWER(v)->xDlClose(LOWER(v), h);
}

static int v_random(sqlite3_vfs *v, int n, char *out)
{
	return LOWER(v)->xRandomness(LOWER(v), n, out);
}

static int v_sleep(sqlite3_vfs *v, int us)
{
	return LOWER(v)->xSleep(LOWER(v), us);
}

static int v_time(sqlite3_vfs *v, double *t)
{
	return LOWER(v)->xCurrentTime(LOWER(v), t);
}

static int v_lasterr(sqlite3_vfs *v, int n, char *msg)
{
	return LOWER(v)->xGetLastError(LOWER(v), n, msg);
}

static int v_time64(sqlite3_vfs *v, sqlite3_int64 *t)
{
	sqlite3_vfs *low = LOWER(v);
	if (low->iVersion >= 2 && low->xCurrentTimeInt64)
		return low->xCurrentTimeInt64(low, t);
	double d;
	int rc = low->xCurrentTime(low, &d);
	*t = (sqlite3_int64)(d * 86400000.0);
	return rc;
}

static int v_setsys(sqlite3_vfs *v, const char *name, sqlite3_syscall_ptr fn)
{
	return LOWER(v)->xSetSystemCall(LOWER(v), name, fn);
}

static sqlite3_syscall_ptr v_getsys(sqlite3_vfs *v, const char *name)
{
	return LOWER(v)->xGetSystemCall(LOWER(v), name);
}

static const char *v_nextsys(sqlite3_vfs *v, const char *name)
{
	return LOWER(v)->xNextSystemCall(LOWER(v), name);
}

static sqlite3_vfs shim = {
	.mxPathname = 0, /* set at registration, with iVersion, szOsFile and pAppData */
	.zName = VFS_NAME,
	.xOpen = v_open,
	.xDelete = v_delete,
	.xAccess = v_access,
	.xFullPathname = v_fullpath,
	.xDlOpen = v_dlopen,
	.xDlError = v_dlerror,
	.xDlSym = v_dlsym,
	.xDlClose = v_dlclose,
	.xRandomness = v_random,
	.xSleep = v_sleep,
	.xCurrentTime = v_time,
	.xGetLastError = v_lasterr,
	.xCurrentTimeInt64 = v_time64,
	.xSetSystemCall = v_setsys,
	.xGetSystemCall = v_getsys,
	.xNextSystemCall = v_nextsys,
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int registered;

static void do_register(void)
{
	if (sqlite3_initialize() != SQLITE_OK)
		return;
	sqlite3_vfs *low = sqlite3_vfs_find(NULL);
	if (!low)
		return;
	shim.iVersion = low->iVersion < 3 ? low->iVersion : 3;
	shim.szOsFile = (int)SUB_OFF + low->szOsFile;
	shim.mxPathname = low->mxPathname;
	shim.pAppData = low;
	registered = sqlite3_vfs_register(&shim, 0) == SQLITE_OK;
}

const char *dbvfs_name(void)
{
	pthread_once(&once, do_register);
	return registered ? VFS_NAME : NULL;
}
