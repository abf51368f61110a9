/*
 * nox/nox.h - everything of libnox in one include.
 */
#ifndef NOX_NOX_H
#define NOX_NOX_H

#include <nox/err.h>
#include <nox/id.h>
#include <nox/backend.h>
#include <nox/tar.h>
#include <nox/v1.h>
#include <nox/log.h>

#endif
