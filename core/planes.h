/* planes.h - placeholder. */
#ifndef TPDEFS_PLANES_H
#define TPDEFS_PLANES_H
#endif
