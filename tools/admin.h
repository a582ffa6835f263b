/* admin.h - tpdefs-admin subcommands, one file each (tools/admin_<name>.c). Each gets the
 * arguments after its name (argv[0] is the subcommand) and returns the exit status. */
#ifndef TPDEFS_ADMIN_H
#define TPDEFS_ADMIN_H

#include "store.h"

int admin_format(int argc, char **argv);
int admin_flush(int argc, char **argv);
int admin_gc(int argc, char **argv);
int admin_stats(int argc, char **argv);
int admin_verify(int argc, char **argv);
int admin_upgrade(int argc, char **argv);

/* Shared helpers (tpdefs-admin.c). */
/* Open BACKING for inspection (no lock, never initialised); prints a clear error. */
int admin_open_store(const char *dir, store **out);
/* Open BACKING for an offline command (its LOCK, or a shared store's mount lock, taken; never
 * initialised). */
int admin_open_locked(const char *backing, store **out, char *err, size_t errlen);
/* Connect to the daemon's control socket. fd, or -errno (-ECONNREFUSED/-ENOENT: no daemon). */
int admin_connect(const char *dir);
/* Connect to the control socket in directory dir (a daemon's BACKING or local_dir). */
int admin_connect_dir(const char *dir);
/* 1 when a daemon holds BACKING/LOCK, 0 when not, -errno. */
int admin_daemon_running(const char *dir);

#endif
