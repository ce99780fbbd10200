#define POP3D_ROOT_ONLY
#include "auth.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <security/pam_appl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "log.h"
#include "sysutil.h"

void
auth_init(void)
{
	/* design.md §3: a password in memory must not end up in a core
	 * file or be readable through /proc by a process of the same uid. */
	if (sys_undumpable() < 0)
		fatal("prctl(PR_SET_DUMPABLE): %m");
}

struct conv_data {
	const char *password;
	bool answered;
};

static void
free_responses(struct pam_response *resp, int n)
{
	for (int i = 0; i < n; i++)
		if (resp[i].resp != NULL) {
			explicit_bzero(resp[i].resp, strlen(resp[i].resp));
			free(resp[i].resp);
		}
	free(resp);
}

/* Answer the one echo-off prompt (the password) once; informational
 * messages need no answer; anything else is not something a POP3 client
 * can answer, so the conversation fails. */
static int
converse(int n, const struct pam_message **msg, struct pam_response **resp_r,
	 void *appdata)
{
	struct conv_data *cd = appdata;
	struct pam_response *resp;

	*resp_r = NULL;
	if (n <= 0 || n > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	resp = calloc(n, sizeof(*resp));
	if (resp == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
			if (cd->answered)
				goto fail;
			resp[i].resp = strdup(cd->password);
			if (resp[i].resp == NULL)
				goto fail;
			cd->answered = true;
			break;
		case PAM_ERROR_MSG:
		case PAM_TEXT_INFO:
			break;
		default:
			goto fail;
		}
	}
	*resp_r = resp;
	return PAM_SUCCESS;
fail:
	free_responses(resp, n);
	return PAM_CONV_ERR;
}

static enum auth_verdict
auth_result(pam_handle_t *pamh, int rc, const char *step)
{
	switch (rc) {
	case PAM_SUCCESS:
		return AUTH_OK;
	case PAM_USER_UNKNOWN:
		return AUTH_UNKNOWN_USER;
	case PAM_AUTH_ERR:
	case PAM_CRED_INSUFFICIENT:
	case PAM_MAXTRIES:
		return AUTH_FAILED;
	case PAM_ACCT_EXPIRED:
	case PAM_NEW_AUTHTOK_REQD:
	case PAM_PERM_DENIED:
		log_msg(LOG_NOTICE, "%s: %s", step, pam_strerror(pamh, rc));
		return AUTH_REFUSED;
	default:
		log_msg(LOG_ERR, "%s: %s", step, pam_strerror(pamh, rc));
		return AUTH_TEMPFAIL;
	}
}

/* The name becomes part of a path (%u): only a plain login name will do. */
static bool
sane_user_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > USER_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] <= 0x20 ||
		    (unsigned char)name[i] >= 0x7f || name[i] == '/')
			return false;
	return true;
}

/* pam_authenticate, pam_acct_mgmt, and the final PAM_USER (modules may
 * map names). */
static enum auth_verdict
run_pam(const struct config *cfg, const struct peer *peer, const char *user,
	const char *password, char name_r[USER_NAME_MAX + 1])
{
	struct conv_data cd = {.password = password};
	struct pam_conv conv = {converse, &cd};
	enum auth_verdict v;
	pam_handle_t *pamh;
	const void *item;
	int rc;

	rc = pam_start(cfg->pam_service, user, &conv, &pamh);
	if (rc != PAM_SUCCESS) {
		log_msg(LOG_ERR, "pam_start: %s", pam_strerror(NULL, rc));
		return AUTH_TEMPFAIL;
	}
	if (strcmp(peer->addr, "pipe") != 0 && strcmp(peer->addr, "unix") != 0)
		rc = pam_set_item(pamh, PAM_RHOST, peer->addr);
	if (rc != PAM_SUCCESS) {
		v = auth_result(pamh, rc, "pam_set_item");
		goto end;
	}
	rc = pam_authenticate(pamh, PAM_DISALLOW_NULL_AUTHTOK);
	if ((v = auth_result(pamh, rc, "pam_authenticate")) != AUTH_OK)
		goto end;
	rc = pam_acct_mgmt(pamh, PAM_DISALLOW_NULL_AUTHTOK);
	if ((v = auth_result(pamh, rc, "pam_acct_mgmt")) != AUTH_OK)
		goto end;
	rc = pam_get_item(pamh, PAM_USER, &item);
	if (rc != PAM_SUCCESS || item == NULL || !sane_user_name(item)) {
		log_msg(LOG_ERR, "PAM gave no usable user name");
		v = AUTH_PERMFAIL;
		goto end;
	}
	snprintf(name_r, USER_NAME_MAX + 1, "%s", (const char *)item);
end:
	pam_end(pamh, rc);
	return v;
}

static enum auth_verdict
lookup_user(const struct config *cfg, const char *name, struct auth_user *who)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(name);
	if (pw == NULL) {
		log_msg(LOG_ERR, "user %s: no passwd entry%s%s", name,
			errno ? ": " : "", errno ? strerror(errno) : "");
		return errno ? AUTH_TEMPFAIL : AUTH_PERMFAIL;
	}
	if ((size_t)snprintf(who->home, sizeof(who->home), "%s", pw->pw_dir) >=
	    sizeof(who->home)) {
		log_msg(LOG_ERR, "user %s: home directory path too long", name);
		return AUTH_PERMFAIL;
	}
	snprintf(who->name, sizeof(who->name), "%s", name);
	who->uid = pw->pw_uid;
	who->gid = pw->pw_gid;
	if (geteuid() != 0) {
		/* Not root: we can only ever be ourselves. */
		if (who->uid != getuid()) {
			log_msg(LOG_NOTICE,
				"user %s: not the user pop3d runs "
				"as",
				name);
			return AUTH_REFUSED;
		}
		return AUTH_OK;
	}
	if (who->uid == 0) {
		log_msg(LOG_NOTICE, "user %s: uid 0 is never served", name);
		return AUTH_REFUSED;
	}
	if (who->uid < cfg->min_uid) {
		log_msg(LOG_NOTICE, "user %s: uid %lu is below --min-uid=%lu",
			name, (unsigned long)who->uid,
			(unsigned long)cfg->min_uid);
		return AUTH_REFUSED;
	}
	return AUTH_OK;
}

void
auth_become(const struct auth_user *who)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (geteuid() != 0)
		return;
	if (initgroups(who->name, who->gid) < 0)
		fatal("initgroups(%s): %m", who->name);
	if (setresgid(who->gid, who->gid, who->gid) < 0)
		fatal("setresgid(%lu): %m", (unsigned long)who->gid);
	if (setresuid(who->uid, who->uid, who->uid) < 0)
		fatal("setresuid(%lu): %m", (unsigned long)who->uid);
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
	    ru != who->uid || eu != who->uid || su != who->uid ||
	    rg != who->gid || eg != who->gid || sg != who->gid)
		fatal("privilege drop to %s did not take", who->name);
	/* Prove it: root must be gone for good. */
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0)
		fatal("privilege drop to %s: root regained", who->name);
	/* The uid change reset the flag auth_init set. */
	if (sys_undumpable() < 0)
		fatal("privilege drop to %s: still dumpable", who->name);
}

const char *
auth_log_name(const char *typed, char *buf, size_t size)
{
	/* A PAM verdict other than "unknown" does not prove the name
	 * exists: PAM may have failed before looking it up. */
	if (getpwnam(typed) == NULL)
		return "UNKNOWN USER";
	return log_word(buf, size, typed);
}

enum auth_verdict
auth_check(const struct config *cfg, const struct peer *peer,
	   struct auth_request *req, struct auth_user *who)
{
	char name[USER_NAME_MAX + 1];
	enum auth_verdict v;

	v = run_pam(cfg, peer, req->user, req->password, name);
	explicit_bzero(req->password, sizeof(req->password));
	/* Not every PAM stack says PAM_USER_UNKNOWN (pam_unix followed by
	 * pam_deny does not): a name no account has is unknown all the
	 * same, and must not be logged (design.md §3). */
	if (v == AUTH_FAILED && getpwnam(req->user) == NULL)
		v = AUTH_UNKNOWN_USER;
	if (v != AUTH_OK)
		return v;
	/* DEC-15 (R4616-06): the password was right; acting as another
	 * user is not offered. */
	if (req->authzid[0] != '\0' && strcmp(req->authzid, req->user) != 0 &&
	    strcmp(req->authzid, name) != 0) {
		char as[USER_NAME_MAX + 4];

		log_msg(LOG_NOTICE, "user %s may not log in as %s", name,
			log_word(as, sizeof(as), req->authzid));
		return AUTH_REFUSED;
	}
	return lookup_user(cfg, name, who);
}
