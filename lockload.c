#include "lockload.h"

#include <dlfcn.h>
#include <errno.h>
#include <lockfile.h>
#include <stddef.h>

#include "log.h"
#include "sysutil.h"

#define LOCKLOAD_LIB "liblockfile.so.1"

/* As lockfile.h declares them: a prototype that differs does not
 * compile. */
static struct {
	__typeof__(lockfile_create) *lockfile_create;
	__typeof__(lockfile_remove) *lockfile_remove;
} fn;

static const struct sys_dlsym symbols[] = {
	{"lockfile_create", (void **)&fn.lockfile_create},
	{"lockfile_remove", (void **)&fn.lockfile_remove},
};

static bool loaded;

bool
lockload_loaded(void)
{
	return loaded;
}

/* The functions are looked up in liblockfile's own handle, not the
 * global scope: a program that also links liblockfile (the unit tests)
 * exports the definitions below, and the global lookup would find them
 * again. */
bool
lockload_load(void)
{
	const char *missing;
	void *lib;

	if (loaded)
		return true;
	if ((lib = dlopen(LOCKLOAD_LIB, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		log_msg(LOG_ERR, "cannot load liblockfile: %s", dlerror());
		return false;
	}
	missing =
		sys_dlbind(lib, symbols, sizeof(symbols) / sizeof(symbols[0]));
	if (missing != NULL) {
		log_msg(LOG_ERR, "%s has no %s", LOCKLOAD_LIB, missing);
		dlclose(lib);
		return false;
	}
	loaded = true;
	return true;
}

/* Not loadable: liblockfile's own "unknown error, see errno", which
 * lock.c logs and answers with LOCK_ERROR. */
int
lockfile_create(const char *lockfile, int retries, int flags)
{
	if (!lockload_load()) {
		errno = ELIBACC;
		return L_ERROR;
	}
	return fn.lockfile_create(lockfile, retries, flags);
}

int
lockfile_remove(const char *lockfile)
{
	if (!lockload_load()) {
		errno = ELIBACC;
		return -1;
	}
	return fn.lockfile_remove(lockfile);
}
