#include "pamload.h"

#include <dlfcn.h>
#include <security/pam_appl.h>
#include <stddef.h>

#include "log.h"
#include "sysutil.h"

#define PAMLOAD_LIBPAM "libpam.so.0"

/* Every PAM function pop3d calls, as the headers declare it: a prototype
 * that differs from libpam's does not compile. */
static struct {
	__typeof__(pam_start) *pam_start;
	__typeof__(pam_end) *pam_end;
	__typeof__(pam_authenticate) *pam_authenticate;
	__typeof__(pam_acct_mgmt) *pam_acct_mgmt;
	__typeof__(pam_set_item) *pam_set_item;
	__typeof__(pam_get_item) *pam_get_item;
	__typeof__(pam_strerror) *pam_strerror;
} fn;

#define SYMBOL(name)                                                           \
	{                                                                      \
#name, (void **)&fn.name                                       \
	}

static const struct sys_dlsym symbols[] = {
	SYMBOL(pam_start),     SYMBOL(pam_end),	     SYMBOL(pam_authenticate),
	SYMBOL(pam_acct_mgmt), SYMBOL(pam_set_item), SYMBOL(pam_get_item),
	SYMBOL(pam_strerror),
};

static bool loaded;

bool
pamload_loaded(void)
{
	return loaded;
}

/* RTLD_GLOBAL and RTLD_DEFAULT: the lookup finds what a link to libpam
 * would have bound, a preloaded library's functions first. (pop3d's own
 * definitions below are not exported, so they are not found.) */
bool
pamload_load(void)
{
	const char *missing;

	if (loaded)
		return true;
	if (dlopen(PAMLOAD_LIBPAM, RTLD_NOW | RTLD_GLOBAL) == NULL) {
		log_msg(LOG_ERR, "cannot load PAM: %s", dlerror());
		return false;
	}
	missing = sys_dlbind(RTLD_DEFAULT, symbols,
			     sizeof(symbols) / sizeof(symbols[0]));
	if (missing != NULL) {
		log_msg(LOG_ERR, "PAM (%s) has no %s", PAMLOAD_LIBPAM, missing);
		return false;
	}
	loaded = true;
	return true;
}

/* A login that cannot reach PAM cannot be decided: end the process
 * rather than guess. */
static void
need(void)
{
	if (!pamload_load())
		fatal("PAM is needed but cannot be loaded");
}

int
pam_start(const char *service_name, const char *user,
	  const struct pam_conv *pam_conversation, pam_handle_t **pamh)
{
	need();
	return fn.pam_start(service_name, user, pam_conversation, pamh);
}

int
pam_end(pam_handle_t *pamh, int pam_status)
{
	need();
	return fn.pam_end(pamh, pam_status);
}

int
pam_authenticate(pam_handle_t *pamh, int flags)
{
	need();
	return fn.pam_authenticate(pamh, flags);
}

int
pam_acct_mgmt(pam_handle_t *pamh, int flags)
{
	need();
	return fn.pam_acct_mgmt(pamh, flags);
}

int
pam_set_item(pam_handle_t *pamh, int item_type, const void *item)
{
	need();
	return fn.pam_set_item(pamh, item_type, item);
}

int
pam_get_item(const pam_handle_t *pamh, int item_type, const void **item)
{
	need();
	return fn.pam_get_item(pamh, item_type, item);
}

const char *
pam_strerror(pam_handle_t *pamh, int errnum)
{
	need();
	return fn.pam_strerror(pamh, errnum);
}
