/* Who may connect.  Credentials come from the kernel once, at accept (libuv has no API for them,
 * libuv#2255): SO_PEERCRED for the pid, uid and primary gid the peer had at connect(), and
 * SO_PEERGROUPS (Linux 4.13) for its supplementary groups when a group list is configured.  The
 * allow lists hold numbers; names are resolved once at start-up.  The per-uid accounts are a
 * short list (one entry per uid with a live connection or job). */
#include "peers.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

#define NAME_BUF_BYTES 16384u   /* getpwnam_r / getgrnam_r scratch */

/* A non-negative decimal number below 2^32 - 1 (uid_t and gid_t are 32-bit, -1 means "none"). */
static bool parse_id(const char *s, unsigned *out)
{
    char *end;
    unsigned long v;

    if (s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v >= 0xffffffffUL)
        return false;
    *out = (unsigned)v;
    return true;
}

static int user_lookup(const char *name, uid_t *out)
{
    static char buf[NAME_BUF_BYTES];   /* start-up only */
    struct passwd pw, *res = NULL;
    unsigned v;

    if (parse_id(name, &v)) {
        *out = (uid_t)v;
        return 0;
    }
    if (getpwnam_r(name, &pw, buf, sizeof buf, &res) != 0 || res == NULL)
        return -1;
    *out = res->pw_uid;
    return 0;
}

int vkr__group_lookup(const char *name, gid_t *out)
{
    static char buf[NAME_BUF_BYTES];   /* start-up only */
    struct group gr, *res = NULL;
    unsigned v;

    if (parse_id(name, &v)) {
        *out = (gid_t)v;
        return 0;
    }
    if (getgrnam_r(name, &gr, buf, sizeof buf, &res) != 0 || res == NULL)
        return -1;
    *out = res->gr_gid;
    return 0;
}

/* Split list at commas and add each entry through lookup. */
static int add_ids(const char *list, bool users, unsigned *ids, unsigned *n, const char *flag, char *why, size_t why_len)
{
    char entry[256];
    const char *p = list;

    if (list[0] == '\0') {
        snprintf(why, why_len, "%s '': expected a comma-separated list of %s names or numbers", flag, users ? "user" : "group");
        return -1;
    }
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        unsigned id;
        int rc;

        if (len == 0 || len >= sizeof entry) {
            snprintf(why, why_len, "%s '%s': empty or overlong entry", flag, list);
            return -1;
        }
        memcpy(entry, p, len);
        entry[len] = '\0';
        if (users) {
            uid_t u;
            rc = user_lookup(entry, &u);
            id = (unsigned)u;
        } else {
            gid_t g;
            rc = vkr__group_lookup(entry, &g);
            id = (unsigned)g;
        }
        if (rc != 0) {
            snprintf(why, why_len, "%s '%s': no such %s", flag, entry, users ? "user" : "group");
            return -1;
        }
        if (*n >= VKR__MAX_ALLOW_IDS) {
            snprintf(why, why_len, "%s: more than %u entries", flag, VKR__MAX_ALLOW_IDS);
            return -1;
        }
        ids[(*n)++] = id;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

int vkr__allow_add_uids(vkr__allow_t *a, const char *list, char *why, size_t why_len)
{
    unsigned ids[VKR__MAX_ALLOW_IDS], n = 0;
    int rc = add_ids(list, true, ids, &n, "--allow-uid", why, why_len);

    for (unsigned i = 0; rc == 0 && i < n; i++) {
        if (a->n_uids >= VKR__MAX_ALLOW_IDS) {
            snprintf(why, why_len, "--allow-uid: more than %u uids in all", VKR__MAX_ALLOW_IDS);
            return -1;
        }
        a->uids[a->n_uids++] = (uid_t)ids[i];
    }
    return rc;
}

int vkr__allow_add_gids(vkr__allow_t *a, const char *list, char *why, size_t why_len)
{
    unsigned ids[VKR__MAX_ALLOW_IDS], n = 0;
    int rc = add_ids(list, false, ids, &n, "--allow-group", why, why_len);

    for (unsigned i = 0; rc == 0 && i < n; i++) {
        if (a->n_gids >= VKR__MAX_ALLOW_IDS) {
            snprintf(why, why_len, "--allow-group: more than %u groups in all", VKR__MAX_ALLOW_IDS);
            return -1;
        }
        a->gids[a->n_gids++] = (gid_t)ids[i];
    }
    return rc;
}

int vkr__peer_read(int fd, vkr__peer_t *p)
{
    struct ucred cred;
    socklen_t len = sizeof cred;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return -errno;
    if (len != sizeof cred)
        return -EPROTO;
    p->pid = cred.pid;
    p->uid = cred.uid;
    p->gid = cred.gid;
    return 0;
}

static bool gid_listed(const vkr__allow_t *a, gid_t g)
{
    for (unsigned i = 0; i < a->n_gids; i++)
        if (a->gids[i] == g)
            return true;
    return false;
}

bool vkr__peer_allowed(const vkr__allow_t *a, int fd, const vkr__peer_t *p)
{
    static gid_t groups[VKR__PEER_GROUPS_MAX];   /* loop thread only */
    socklen_t len = sizeof groups;

    for (unsigned i = 0; i < a->n_uids; i++)
        if (a->uids[i] == p->uid)
            return true;
    if (a->n_gids == 0)
        return false;
    if (gid_listed(a, p->gid))
        return true;
    /* ERANGE (more than VKR__PEER_GROUPS_MAX groups) or an old kernel: the primary group only */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0)
        return false;
    for (size_t i = 0; i < len / sizeof groups[0]; i++)
        if (gid_listed(a, groups[i]))
            return true;
    return false;
}

void vkr__allow_describe(const vkr__allow_t *a, char *buf, size_t len)
{
    size_t used = 0;
    int n;

    n = snprintf(buf, len, "uid%s", a->n_uids == 1 ? "" : "s");
    used = n > 0 ? (size_t)n : 0;
    for (unsigned i = 0; i < a->n_uids && used < len; i++) {
        n = snprintf(buf + used, len - used, "%s%u", i ? ", " : " ", (unsigned)a->uids[i]);
        used += n > 0 ? (size_t)n : 0;
    }
    if (a->n_gids > 0 && used < len) {
        n = snprintf(buf + used, len - used, "; group%s", a->n_gids == 1 ? "" : "s");
        used += n > 0 ? (size_t)n : 0;
        for (unsigned i = 0; i < a->n_gids && used < len; i++) {
            n = snprintf(buf + used, len - used, "%s%u", i ? ", " : " ", (unsigned)a->gids[i]);
            used += n > 0 ? (size_t)n : 0;
        }
    }
}

vkr__uid_account_t *vkr__account_ref(vkr__uid_account_t **list, uid_t uid)
{
    vkr__uid_account_t *a;

    for (a = *list; a != NULL; a = a->next)
        if (a->queue.uid == (unsigned)uid)
            break;
    if (a == NULL) {
        a = vkr__calloc(1, sizeof *a);
        if (a == NULL)
            return NULL;
        a->queue.uid = (unsigned)uid;
        a->next = *list;
        *list = a;
    }
    a->refs++;
    return a;
}

void vkr__account_unref(vkr__uid_account_t **list, vkr__uid_account_t *a)
{
    vkr__uid_account_t **pp;

    if (--a->refs > 0)
        return;
    for (pp = list; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    }
    vkr__free(a);
}
