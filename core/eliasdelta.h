/* eliasdelta.h - placeholder. */
#ifndef TPDEFS_ELIASDELTA_H
#define TPDEFS_ELIASDELTA_H
#endif
