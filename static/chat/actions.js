/**
 * What you can do to a person from their message or their roster entry: mention them,
 * block them, and for the host team mute, kick and ban. Each action is one command; the
 * outcome (ack or the server's error, e.g. forbidden) comes back as a toast.
 */
import { allowedOn } from "./roles.js";
import { format, gettext, ngettext } from "./i18n.js";
import { limits } from "./limits.js";
import { badgesFor, displayName, formatDateTime, formatDuration, h, timeNode } from "./render.js";

export const MUTE_PRESETS = [10, 60, 600, 3600, 86400, 604800];
// null: permanent.
export const BAN_PRESETS = [3600, 86400, 604800, 2592000, null];

function menuItem(label, onSelect, { danger = false } = {}) {
  const item = h("button", { type: "button", role: "menuitem", class: `menu-item${danger ? " danger" : ""}`, text: label });
  item.addEventListener("click", onSelect);
  return item;
}

function personHeading(person) {
  return h(
    "div",
    { class: "popover-head" },
    h(
      "span",
      { class: "popover-title" },
      ...badgesFor(person).map((b) => h("span", { class: `badge badge-${b.key}`, text: b.label })),
      displayName(person),
    ),
  );
}

const ROLE_NAMES = {
  host: () => gettext("Host"),
  moderator: () => gettext("Moderator"),
  member: () => gettext("Member"),
  guest: () => gettext("Guest"),
};

/** "3 days", "5 months", "2 years": how long ago an account was made ("" for today). */
export function accountAge(iso, now = Date.now()) {
  const days = Math.max(0, Math.floor((now - new Date(iso).getTime()) / 86_400_000));
  if (days < 1) return "";
  if (days < 60) return format(ngettext("%(n)s day", "%(n)s days", days), { n: days });
  const months = Math.floor(days / 30.4);
  if (months < 24) return format(ngettext("%(n)s month", "%(n)s months", months), { n: months });
  const years = Math.floor(days / 365.25);
  return format(ngettext("%(n)s year", "%(n)s years", years), { n: years });
}

function restrictionText(kind, state) {
  if (!state) return kind === "mute" ? gettext("Not muted") : gettext("Not banned");
  const values = { time: formatDateTime(state.until), reason: state.reason };
  let text;
  if (kind === "mute") text = format(gettext("Muted until %(time)s"), values);
  else if (state.until) text = format(gettext("Banned until %(time)s"), values);
  else text = gettext("Banned permanently");
  return state.reason ? format(gettext("%(text)s (%(reason)s)"), { text, reason: state.reason }) : text;
}

export class PersonActions {
  /**
   * app: {me(), commands, popover, toast(text, level), mention(name) | null,
   *       blocked(): ids, setBlocked(ids, person, blocked), peopleApi}
   */
  constructor(app) {
    this.app = app;
  }

  /** Whether `person` has a card for you at all (not you, not a guest). */
  hasMenu(person) {
    return allowedOn(this.app.me(), person).block;
  }

  /**
   * The person's card by `anchor`: who they are (role, account age, recent messages
   * here), the host team's view of their mute and ban, and what you can do.
   */
  open(anchor, person, { onClose = null } = {}) {
    if (!this.hasMenu(person)) return;
    const card = this.#card(person);
    const opened = this.app.popover.toggle(anchor, card, { label: format(gettext("Actions for %(name)s"), { name: displayName(person) }), onClose });
    if (opened) this.#load(person, card);
  }

  #card(person) {
    return h(
      "div",
      { class: "person-card", dataset: { userId: String(person.id) } },
      personHeading(person),
      h("p", { class: "card-facts muted", text: gettext("Loading…") }),
      h("ol", { class: "card-recent", "aria-label": gettext("Recent messages here") }),
      this.#menu(person, null),
    );
  }

  async #load(person, card) {
    let data = null;
    try {
      const response = await fetch(`${this.app.peopleApi}${person.id}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) data = await response.json();
    } catch {
      data = null;
    }
    if (!card.isConnected) return;
    const facts = card.querySelector(".card-facts");
    if (!data) {
      facts.textContent = gettext("Couldn't load their details.");
      return;
    }
    const role = ROLE_NAMES[data.person?.role]?.() || ROLE_NAMES.member();
    const age = accountAge(data.joined);
    facts.textContent = age
      ? format(gettext("%(role)s · joined %(age)s ago"), { role, age })
      : format(gettext("%(role)s · joined today"), { role });
    facts.title = formatDateTime(data.joined, { dateStyle: "long" });
    const recent = card.querySelector(".card-recent");
    recent.replaceChildren(
      ...(data.recent || []).map((m) => h("li", { class: "card-line" }, timeNode(m.ts), " ", h("span", { class: "card-body", text: m.body }))),
    );
    if (!(data.recent || []).length) recent.append(h("li", { class: "muted", text: gettext("No messages here yet.") }));
    if ("muted" in data || "banned" in data) {
      card.insertBefore(
        h("p", { class: "card-standing" },
          h("span", { class: data.muted ? "standing-on" : "", text: restrictionText("mute", data.muted) }),
          h("span", { class: data.banned ? "standing-on" : "", text: restrictionText("ban", data.banned) })),
        recent,
      );
    }
    // The actions now know whether to offer Mute or Unmute, Ban or Unban.
    const focusedIndex = [...card.querySelectorAll("[role=menuitem]")].indexOf(document.activeElement);
    const menu = this.#menu(person, data);
    card.querySelector("[role=menu]").replaceWith(menu);
    const items = menu.querySelectorAll("[role=menuitem]");
    if (focusedIndex >= 0) items[Math.min(focusedIndex, items.length - 1)]?.focus({ preventScroll: true });
  }

  /** The actions; `standing` (from the card's data) says which of mute/unmute and ban/unban apply. */
  #menu(person, standing) {
    const can = allowedOn(this.app.me(), person);
    const close = () => this.app.popover.close({ restoreFocus: true });
    const items = [];
    const name = person.name;
    if (can.mention && this.app.mention) {
      items.push(menuItem(format(gettext("Mention @%(name)s"), { name }), () => {
        close();
        this.app.mention(name);
      }));
    }
    const team = [];
    const known = standing && ("muted" in standing || "banned" in standing);
    if (can.mute && known) {
      if (standing.muted) team.push(menuItem(gettext("Unmute"), () => this.#run(close, { type: "unmute", user: person.id }, format(gettext("%(name)s can chat again."), { name }))));
      else team.push(menuItem(gettext("Mute…"), () => this.app.popover.show(this.#durationForm(person, "mute"))));
    }
    if (can.kick && known) {
      team.push(menuItem(gettext("Kick from the room"), () => this.#run(close, { type: "kick", user: person.id }, format(gettext("%(name)s was removed from the room."), { name }))));
    }
    if (can.ban && known) {
      if (standing.banned) team.push(menuItem(gettext("Unban"), () => this.#run(close, { type: "unban", user: person.id }, format(gettext("%(name)s is no longer banned."), { name }))));
      else team.push(menuItem(gettext("Ban…"), () => this.app.popover.show(this.#durationForm(person, "ban")), { danger: true }));
    }
    if (team.length) items.push(h("div", { class: "menu-sep", role: "separator" }), ...team);
    const blocked = this.app.blocked().includes(person.id);
    items.push(h("div", { class: "menu-sep", role: "separator" }));
    items.push(
      blocked
        ? menuItem(format(gettext("Unblock %(name)s"), { name }), () => this.unblock(person, close))
        : menuItem(format(gettext("Block %(name)s"), { name }), () => this.block(person, close), { danger: true }),
    );
    return h("div", { class: "menu", role: "menu", "aria-label": format(gettext("Actions for %(name)s"), { name: displayName(person) }) }, ...items);
  }

  /** The mute or ban form: an optional reason, then one click on a length sends it. */
  #durationForm(person, kind) {
    const presets = kind === "mute" ? MUTE_PRESETS : BAN_PRESETS;
    const title = format(kind === "mute" ? gettext("Mute %(name)s") : gettext("Ban %(name)s"), { name: displayName(person) });
    const reason = h("input", {
      type: "text", class: "input", id: `${kind}-reason`, maxlength: String(limits.reason_max), placeholder: gettext("Reason (optional)"), autofocus: true,
    });
    const back = h("button", { type: "button", class: "icon-button", "aria-label": gettext("Back"), title: gettext("Back"), text: "‹" });
    back.addEventListener("click", () => {
      const card = this.#card(person);
      this.app.popover.show(card);
      this.#load(person, card);
    });
    const buttons = presets.map((seconds) => {
      const label = seconds == null ? gettext("Permanent") : formatDuration(seconds);
      const button = h("button", {
        type: "button",
        class: `chip-button${seconds == null ? " danger" : ""}`,
        dataset: { seconds: seconds == null ? "" : String(seconds) },
        text: label,
      });
      button.addEventListener("click", () => {
        const frame = { type: kind, user: person.id, reason: reason.value.trim() };
        if (seconds != null) frame.seconds = seconds;
        const values = { name: person.name, span: seconds == null ? "" : formatDuration(seconds) };
        let done;
        if (kind === "mute") done = format(gettext("Muted %(name)s for %(span)s."), values);
        else if (seconds == null) done = format(gettext("Banned %(name)s permanently."), values);
        else done = format(gettext("Banned %(name)s for %(span)s."), values);
        this.#run(() => this.app.popover.close({ restoreFocus: true }), frame, done);
      });
      return button;
    });
    return h(
      "div",
      { class: `duration-form ${kind}-form`, role: "group", "aria-label": title },
      h("div", { class: "popover-head" }, back, h("span", { class: "popover-title", text: title })),
      h("label", { class: "visually-hidden", for: `${kind}-reason`, text: gettext("Reason") }),
      reason,
      h("div", { class: "chip-grid", role: "group", "aria-label": kind === "mute" ? gettext("Mute for") : gettext("Ban for") }, ...buttons),
    );
  }

  async #run(close, frame, success) {
    close();
    try {
      await this.app.commands.run(frame);
      this.app.toast(success, "ok");
    } catch (failure) {
      this.app.toast(failure.detail, "error");
    }
  }

  async block(person, close = () => {}) {
    close();
    try {
      const ack = await this.app.commands.run({ type: "block", user: person.id });
      this.app.setBlocked(ack.blocked, person, true);
      this.app.toast(format(gettext("Blocked %(name)s: you won't see their messages or tips."), { name: person.name }), "ok");
    } catch (failure) {
      this.app.toast(failure.detail, "error");
    }
  }

  async unblock(person, close = () => {}) {
    close();
    try {
      const ack = await this.app.commands.run({ type: "unblock", user: person.id });
      this.app.setBlocked(ack.blocked, person, false);
      this.app.toast(format(gettext("Unblocked %(name)s: their messages show again."), { name: person.name }), "ok");
    } catch (failure) {
      this.app.toast(failure.detail, "error");
    }
  }
}
