/**
 * What you can do to a person from their message or their roster entry: mention them,
 * block them, and for the host team mute, kick and ban. Each action is one command; the
 * outcome (ack or the server's error, e.g. forbidden) comes back as a toast.
 */
import { allowedOn } from "./roles.js";
import { badgesFor, displayName, formatDuration, h } from "./render.js";

export const MUTE_PRESETS = [
  [10, "10 s"],
  [60, "1 min"],
  [600, "10 min"],
  [3600, "1 h"],
  [86400, "24 h"],
  [604800, "1 week"],
];
export const BAN_PRESETS = [
  [3600, "1 h"],
  [86400, "24 h"],
  [604800, "1 week"],
  [2592000, "30 days"],
  [null, "Permanent"],
];
const REASON_MAX = 200;

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

export class PersonActions {
  /**
   * app: {me(), commands, popover, toast(text, level), mention(name) | null,
   *       blocked(): ids, setBlocked(ids, person, blocked)}
   */
  constructor(app) {
    this.app = app;
  }

  /** Whether `person` has a menu for you at all (not you, not a guest). */
  hasMenu(person) {
    return allowedOn(this.app.me(), person).block;
  }

  open(anchor, person, { onClose = null } = {}) {
    const menu = this.#menu(person);
    if (!menu) return;
    this.app.popover.toggle(anchor, menu, { label: `Actions for ${displayName(person)}`, onClose });
  }

  #menu(person) {
    const can = allowedOn(this.app.me(), person);
    if (!can.block) return null;
    const close = () => this.app.popover.close({ restoreFocus: true });
    const items = [];
    if (can.mention && this.app.mention) {
      items.push(menuItem(`Mention @${person.name}`, () => {
        close();
        this.app.mention(person.name);
      }));
    }
    const team = [];
    if (can.mute) {
      team.push(menuItem("Mute…", () => this.app.popover.show(this.#durationForm(person, "mute"))));
      team.push(menuItem("Unmute", () => this.#run(close, { type: "unmute", user: person.id }, `${person.name} can chat again.`)));
    }
    if (can.kick) {
      team.push(menuItem("Kick from the room", () => this.#run(close, { type: "kick", user: person.id }, `${person.name} was removed from the room.`)));
    }
    if (can.ban) {
      team.push(menuItem("Ban…", () => this.app.popover.show(this.#durationForm(person, "ban")), { danger: true }));
      team.push(menuItem("Unban", () => this.#run(close, { type: "unban", user: person.id }, `${person.name} is no longer banned.`)));
    }
    if (team.length) items.push(h("div", { class: "menu-sep", role: "separator" }), ...team);
    const blocked = this.app.blocked().includes(person.id);
    items.push(h("div", { class: "menu-sep", role: "separator" }));
    items.push(
      blocked
        ? menuItem(`Unblock ${person.name}`, () => this.unblock(person, close))
        : menuItem(`Block ${person.name}`, () => this.block(person, close), { danger: true }),
    );
    return h("div", { class: "menu", role: "menu", "aria-label": `Actions for ${displayName(person)}` }, personHeading(person), ...items);
  }

  /** The mute or ban form: an optional reason, then one click on a length sends it. */
  #durationForm(person, kind) {
    const presets = kind === "mute" ? MUTE_PRESETS : BAN_PRESETS;
    const verb = kind === "mute" ? "Mute" : "Ban";
    const reason = h("input", {
      type: "text", class: "input", id: `${kind}-reason`, maxlength: String(REASON_MAX), placeholder: "Reason (optional)", autofocus: true,
    });
    const back = h("button", { type: "button", class: "icon-button", "aria-label": "Back", title: "Back", text: "‹" });
    back.addEventListener("click", () => this.app.popover.show(this.#menu(person)));
    const buttons = presets.map(([seconds, label]) => {
      const button = h("button", {
        type: "button",
        class: `chip-button${seconds == null ? " danger" : ""}`,
        dataset: { seconds: seconds == null ? "" : String(seconds) },
        text: label,
      });
      button.addEventListener("click", () => {
        const frame = { type: kind, user: person.id, reason: reason.value.trim() };
        if (seconds != null) frame.seconds = seconds;
        const span = seconds == null ? "permanently" : `for ${formatDuration(seconds)}`;
        const done = kind === "mute" ? `Muted ${person.name} ${span}.` : `Banned ${person.name} ${span}.`;
        this.#run(() => this.app.popover.close({ restoreFocus: true }), frame, done);
      });
      return button;
    });
    return h(
      "div",
      { class: `duration-form ${kind}-form`, role: "group", "aria-label": `${verb} ${displayName(person)}` },
      h("div", { class: "popover-head" }, back, h("span", { class: "popover-title", text: `${verb} ${displayName(person)}` })),
      h("label", { class: "visually-hidden", for: `${kind}-reason`, text: "Reason" }),
      reason,
      h("div", { class: "chip-grid", role: "group", "aria-label": kind === "mute" ? "Mute for" : "Ban for" }, ...buttons),
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
      this.app.toast(`Blocked ${person.name}: you won't see their messages or tips.`, "ok");
    } catch (failure) {
      this.app.toast(failure.detail, "error");
    }
  }

  async unblock(person, close = () => {}) {
    close();
    try {
      const ack = await this.app.commands.run({ type: "unblock", user: person.id });
      this.app.setBlocked(ack.blocked, person, false);
      this.app.toast(`Unblocked ${person.name}: their new messages will show again.`, "ok");
    } catch (failure) {
      this.app.toast(failure.detail, "error");
    }
  }
}
