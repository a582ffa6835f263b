/* db_pg.h - the PostgreSQL driver behind db.h (db_pg.c). */
#ifndef TPDEFS_DB_PG_H
#define TPDEFS_DB_PG_H

#include <stdint.h>

#include "db.h"

/* Connect with a libpq connection string or URI. On failure err holds libpq's message (which
 * names host, port, database and user, never the password); -EIO or -ENOMEM. */
int db_open_pg(const char *conninfo, db **out, char *err, size_t errlen);

/* Hold the session-level advisory lock key (shared or exclusive) on this connection for its whole
 * life, taking it again after a reconnect. 1 taken, 0 held elsewhere in a conflicting mode
 * (nothing changed), -errno. Once taken, losing it (a reconnect that finds another holder) fails
 * every later call with -EIO. At most 4 at a time. */
int db_pg_hold_lock(db *d, int64_t key, int shared);
void db_pg_release_lock(db *d, int64_t key, int shared);
/* 1 when another session holds key in any mode that conflicts with exclusive (tried and released
 * at once), 0 when nobody does, -errno. */
int db_pg_lock_taken(db *d, int64_t key);
/* A transient exclusive lock: wait for it / release it. */
int db_pg_lock_wait(db *d, int64_t key);
void db_pg_unlock(db *d, int64_t key);

#endif
