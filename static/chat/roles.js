/**
 * Rank and what one person may do to another, as far as the page goes.
 *
 * The server decides every action; this only keeps the page from offering what it would
 * refuse (PROTOCOL.md: nobody moderates someone of equal or higher rank).
 */
export const RANK = Object.freeze({ guest: 0, member: 1, moderator: 2, host: 3, staff: 4 });

export function rankOf(user) {
  if (!user) return RANK.guest;
  if (user.staff) return RANK.staff;
  return RANK[user.role] ?? (user.id != null ? RANK.member : RANK.guest);
}

export function isTeam(user) {
  return rankOf(user) >= RANK.moderator;
}

export function canModerate(me) {
  return me?.id != null && rankOf(me) >= RANK.moderator;
}

/** Hosts and staff: ban, unban, go live, retitle. */
export function canRunRoom(me) {
  return me?.id != null && rankOf(me) >= RANK.host;
}

/**
 * What `me` may do to `target` (a protocol user). Everything false for yourself,
 * for guests and for anyone of your rank or above.
 */
export function allowedOn(me, target) {
  const none = { mute: false, kick: false, ban: false, block: false, mention: false };
  if (me?.id == null || target?.id == null || target.id === me.id) return none;
  const above = rankOf(me) > rankOf(target);
  return {
    mute: above && canModerate(me),
    kick: above && canModerate(me),
    ban: above && canRunRoom(me),
    block: true,
    mention: Boolean(target.name),
  };
}

/** Authors delete their own messages; the team deletes lower ranks'. */
export function canDelete(me, author) {
  if (me?.id == null) return false;
  if (author?.id != null && author.id === me.id) return true;
  return canModerate(me) && rankOf(me) > rankOf(author);
}
