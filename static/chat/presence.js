/**
 * Who is online: the roster from `welcome`/`roster`, kept current by `presence` deltas.
 *
 * The server sends the whole online team with every delta, so only the audience is
 * maintained incrementally. Anonymous viewers arrive as `{}` in `joined`/`left`: they
 * change the count but have no entry.
 */
export class Roster {
  constructor() {
    this.count = 0;
    this.team = [];
    this.audience = new Map();
  }

  load(roster) {
    if (!roster) return;
    if (Number.isInteger(roster.count)) this.count = roster.count;
    this.team = Array.isArray(roster.team) ? roster.team.filter(hasId) : [];
    if (!roster.offset) this.audience.clear();
    for (const user of roster.audience ?? []) {
      if (hasId(user)) this.audience.set(user.id, user);
    }
    this.#dropTeamFromAudience();
  }

  apply(delta) {
    if (Number.isInteger(delta.count)) this.count = delta.count;
    if (Array.isArray(delta.team)) this.team = delta.team.filter(hasId);
    for (const user of delta.left ?? []) {
      if (hasId(user)) this.audience.delete(user.id);
    }
    for (const user of [...(delta.joined ?? []), ...(delta.changed ?? [])]) {
      if (hasId(user)) this.audience.set(user.id, user);
    }
    this.#dropTeamFromAudience();
  }

  audienceList() {
    return [...this.audience.values()].sort(byName);
  }

  teamList() {
    return [...this.team].sort(byName);
  }

  /** Online viewers not listed by name: guests, and anyone past the roster page. */
  get unlisted() {
    return Math.max(0, this.count - this.team.length - this.audience.size);
  }

  #dropTeamFromAudience() {
    for (const user of this.team) this.audience.delete(user.id);
  }
}

function hasId(user) {
  return user != null && Number.isInteger(user.id);
}

function byName(a, b) {
  return String(a.name ?? "").localeCompare(String(b.name ?? ""), undefined, { sensitivity: "base" });
}
