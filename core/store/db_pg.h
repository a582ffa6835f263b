/* db_pg.h - the PostgreSQL driver behind db.h (db_pg.c). */
#ifndef TPDEFS_DB_PG_H
#define TPDEFS_DB_PG_H

#include <stdint.h>

#include "db.h"

/* Connect with a libpq connection string or URI. On failure err holds libpq's message (which
 * names host, port, database and user, never the password); -EIO or -ENOMEM. */
int db_open_pg(const char *conninfo, db **out, char *err, size_t errlen);

/* Hold the session-level advisory lock key on this connection for its whole life, taking it
 * again after a reconnect. 1 taken, 0 held by another session (nothing changed), -errno. Once
 * taken, losing it (a reconnect that finds another holder) fails every later call with -EIO. */
int db_pg_hold_lock(db *d, int64_t key);
/* 1 when another session holds key (tried and released at once), 0 when nobody does, -errno. */
int db_pg_lock_taken(db *d, int64_t key);

#endif
