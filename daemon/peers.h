/* Who may connect: the peer credentials read once at accept (SO_PEERCRED, and SO_PEERGROUPS for
 * the supplementary groups), the allow lists they are checked against (--allow-uid,
 * --allow-group; default: the daemon's own uid only, root included only when it is that uid), and
 * the per-uid accounts that carry the per-uid caps (--max-connections-per-uid here, the bytes of
 * --max-bytes-per-uid in the queue's account). */
#ifndef VKR_DAEMON_PEERS_H
#define VKR_DAEMON_PEERS_H

#include <stdbool.h>
#include <sys/types.h>

#include "queue.h"

#define VKR__MAX_ALLOW_IDS 64u             /* entries in --allow-uid plus the daemon's, and in --allow-group */
#define VKR__PEER_GROUPS_MAX 1024u         /* supplementary groups of a peer that --allow-group looks at */

typedef struct {
    unsigned n_uids, n_gids;
    uid_t uids[VKR__MAX_ALLOW_IDS];
    gid_t gids[VKR__MAX_ALLOW_IDS];
} vkr__allow_t;

/* A connected peer, as the kernel saw it at connect(). */
typedef struct {
    pid_t pid;
    uid_t uid;
    gid_t gid;                             /* primary group */
} vkr__peer_t;

/* Add the users (or groups) of a comma-separated list of names or numbers ("1000,alice") to a.
 * Returns 0, or -1 with a message naming the entry written to why (a name that does not exist, a
 * malformed number, more than VKR__MAX_ALLOW_IDS entries). */
int vkr__allow_add_uids(vkr__allow_t *a, const char *list, char *why, size_t why_len);
int vkr__allow_add_gids(vkr__allow_t *a, const char *list, char *why, size_t why_len);

/* Resolve a group name or number ("video", "44").  Returns 0 or -1. */
int vkr__group_lookup(const char *name, gid_t *out);

/* Read the peer's pid, uid and primary gid of an accepted socket.  Returns 0 or -errno. */
int vkr__peer_read(int fd, vkr__peer_t *p);

/* Whether the peer on fd may connect: its uid is in a->uids, or its primary group or one of its
 * supplementary groups (SO_PEERGROUPS, read only when a->n_gids > 0) is in a->gids. */
bool vkr__peer_allowed(const vkr__allow_t *a, int fd, const vkr__peer_t *p);

/* The allow lists in words for log lines and refusals ("uids 1000, 1001; groups 44"). */
void vkr__allow_describe(const vkr__allow_t *a, char *buf, size_t len);

/* One uid's connections and bytes. */
typedef struct vkr__uid_account {
    struct vkr__uid_account *next;
    unsigned connections;                  /* open connections (--max-connections-per-uid) */
    unsigned refs;                         /* clients alive (a closed connection lives on while its jobs finish) */
    vkr__queue_account_t queue;            /* bytes in flight (--max-bytes-per-uid) */
} vkr__uid_account_t;

/* The account of uid in *list, created (vkr__calloc) if it has none: NULL when out of memory.
 * Takes one reference; vkr__account_unref gives it back and frees the account with the last. */
vkr__uid_account_t *vkr__account_ref(vkr__uid_account_t **list, uid_t uid);
void vkr__account_unref(vkr__uid_account_t **list, vkr__uid_account_t *a);

#endif
