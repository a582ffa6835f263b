/* pool.c - placeholder until the module lands. */
typedef int tpdefs_placeholder_pool;
