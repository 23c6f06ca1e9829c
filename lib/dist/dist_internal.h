/*
 * dist_internal.h - what lib/dist shares between its files. Never
 * installed.
 */
#ifndef TINYCNN_DIST_INTERNAL_H
#define TINYCNN_DIST_INTERNAL_H

#include "../internal.h"

#endif /* TINYCNN_DIST_INTERNAL_H */
