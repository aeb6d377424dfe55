/**
 * The host team's room controls (stream state and title, slow mode, announcements) and
 * the moderation log. The page shows them only to the team; the server checks again.
 */
import { canRunRoom } from "./roles.js";
import { format, gettext } from "./i18n.js";
import { limits } from "./limits.js";
import { displayName, formatDateTime, formatDuration, formatTime, h } from "./render.js";

const LOG_DEBOUNCE_MS = 400;
const CONFIRM_MS = 4000;

export class TeamTools {
  /** app: {commands, toast(text, level), me(), room()} */
  constructor(app, els) {
    this.app = app;
    this.els = els;
    this.confirmTimer = null;
    els.toggle.addEventListener("click", () => this.setOpen(els.panel.hidden));
    els.liveToggle.addEventListener("click", () => this.#toggleLive());
    els.titleInput.addEventListener("input", () => {
      const title = els.titleInput.value.trim();
      els.titleSave.disabled = !title || title === this.app.room()?.title;
    });
    els.titleForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#saveTitle();
    });
    for (const button of els.slow.querySelectorAll("button[data-seconds]")) {
      button.addEventListener("click", () => this.#setSlowMode(Number(button.dataset.seconds)));
    }
    els.announceForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#announce();
    });
  }

  /** Show the tools to whom they are for; called on every welcome (roles may change). */
  setMe(me, { team }) {
    this.els.titleInput.maxLength = limits.title_max;
    this.els.announceBody.maxLength = limits.notice_body_max;
    this.els.toggle.hidden = !team;
    this.els.stream.hidden = !canRunRoom(me);
    if (!team) this.setOpen(false);
  }

  setOpen(open) {
    this.els.panel.hidden = !open;
    this.els.toggle.setAttribute("aria-expanded", String(open));
    try {
      localStorage.setItem("chatsite.tools-open", open ? "1" : "0");
    } catch {
      // Storage can be off (private mode); the panel just starts closed next time.
    }
  }

  restoreOpen() {
    let open = false;
    try {
      open = localStorage.getItem("chatsite.tools-open") === "1";
    } catch {
      open = false;
    }
    if (!this.els.toggle.hidden) this.setOpen(open);
  }

  setRoom(room) {
    const { els } = this;
    els.liveState.textContent = room.is_live ? gettext("Live now") : gettext("Offline");
    els.liveState.dataset.live = String(Boolean(room.is_live));
    this.#resetLiveButton(room);
    if (document.activeElement !== els.titleInput) {
      els.titleInput.value = room.title || "";
      els.titleSave.disabled = true;
    }
    const slow = room.slow_mode_seconds || 0;
    for (const button of els.slow.querySelectorAll("button[data-seconds]")) {
      button.setAttribute("aria-checked", String(Number(button.dataset.seconds) === slow));
    }
  }

  #resetLiveButton(room = this.app.room()) {
    clearTimeout(this.confirmTimer);
    const button = this.els.liveToggle;
    button.dataset.confirm = "false";
    button.classList.toggle("button-danger", Boolean(room?.is_live));
    button.textContent = room?.is_live ? gettext("End stream") : gettext("Go live");
  }

  async #toggleLive() {
    const room = this.app.room();
    const button = this.els.liveToggle;
    // Ending restarts the "this stream" tallies when it goes live again: ask once more.
    if (room?.is_live && button.dataset.confirm !== "true") {
      button.dataset.confirm = "true";
      button.textContent = gettext("Click again to end");
      this.confirmTimer = setTimeout(() => this.#resetLiveButton(), CONFIRM_MS);
      return;
    }
    button.disabled = true;
    try {
      await this.app.commands.run({ type: "room_status", is_live: !room?.is_live });
      this.app.toast(room?.is_live ? gettext("The stream has ended.") : gettext("You are live."), "ok");
    } catch (failure) {
      this.app.toast(failure.detail, "error");
      this.#resetLiveButton();
    } finally {
      button.disabled = false;
    }
  }

  async #saveTitle() {
    const title = this.els.titleInput.value.trim();
    if (!title) return;
    this.els.titleSave.disabled = true;
    try {
      await this.app.commands.run({ type: "room_status", title });
      this.els.titleInput.blur();
      this.app.toast(gettext("Title saved."), "ok");
    } catch (failure) {
      this.els.titleSave.disabled = false;
      this.app.toast(failure.detail, "error");
    }
  }

  async #setSlowMode(seconds) {
    try {
      await this.app.commands.run({ type: "slow_mode", seconds });
      this.app.toast(seconds ? format(gettext("Slow mode: one message every %(n)s s."), { n: seconds }) : gettext("Slow mode is off."), "ok");
    } catch (failure) {
      this.app.toast(failure.detail, "error");
    }
  }

  async #announce() {
    const body = this.els.announceBody.value.trim();
    if (!body) {
      this.els.announceBody.focus();
      return;
    }
    const level = this.els.announceForm.querySelector("input[name=level]:checked")?.value || "info";
    this.els.announceSend.disabled = true;
    try {
      await this.app.commands.run({ type: "announce", body, level });
      this.els.announceBody.value = "";
      this.app.toast(gettext("Announcement posted."), "ok");
    } catch (failure) {
      this.app.toast(failure.detail, "error");
    } finally {
      this.els.announceSend.disabled = false;
    }
  }
}

export function describeLogEntry(entry) {
  const values = {
    actor: displayName(entry.actor),
    target: entry.target ? displayName(entry.target) : gettext("someone"),
    span: entry.seconds ? formatDuration(entry.seconds) : "",
    n: entry.seconds || 0,
    action: entry.action,
  };
  const sentence = {
    slow_mode: entry.seconds ? gettext("%(actor)s set slow mode to %(n)s s") : gettext("%(actor)s turned slow mode off"),
    mute: entry.seconds ? gettext("%(actor)s muted %(target)s for %(span)s") : gettext("%(actor)s muted %(target)s"),
    unmute: gettext("%(actor)s unmuted %(target)s"),
    ban: entry.seconds ? gettext("%(actor)s banned %(target)s for %(span)s") : gettext("%(actor)s banned %(target)s permanently"),
    unban: gettext("%(actor)s unbanned %(target)s"),
    kick: gettext("%(actor)s kicked %(target)s"),
    delete: gettext("%(actor)s deleted a message by %(target)s"),
  }[entry.action] || gettext("%(actor)s: %(action)s %(target)s");
  return format(sentence, values);
}

/** For each person, the mute and ban still running according to the log (newest first). */
export function activeRestrictions(entries, now = Date.now()) {
  const decided = new Map();
  const active = new Set();
  for (const entry of entries) {
    const pair = { mute: "mute", unmute: "mute", ban: "ban", unban: "ban" }[entry.action];
    const target = entry.target?.id;
    if (!pair || target == null) continue;
    const key = `${pair}:${target}`;
    if (decided.has(key)) continue;
    decided.set(key, true);
    const running = entry.action === pair && (entry.until == null ? pair === "ban" : new Date(entry.until).getTime() > now);
    if (running) active.add(entry.id);
  }
  return active;
}

export class ModerationLog {
  /** app: {commands, toast, me()} */
  constructor(app, { url, list, empty, isVisible }) {
    this.app = app;
    this.url = url;
    this.list = list;
    this.empty = empty;
    this.isVisible = isVisible;
    this.stale = true;
    this.timer = null;
    list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-undo]");
      if (button) this.#undo(button);
    });
  }

  shown() {
    if (this.stale) this.refresh();
  }

  /** A moderation event happened: the log has a new line. */
  changed() {
    this.stale = true;
    if (!this.isVisible()) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), LOG_DEBOUNCE_MS);
  }

  async refresh() {
    if (!this.url) return;
    this.stale = false;
    let data;
    try {
      const response = await fetch(this.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      data = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(data?.error?.detail || `HTTP ${response.status}`);
    } catch (failure) {
      this.stale = true;
      this.empty.textContent = format(gettext("Couldn't load the log: %(error)s"), { error: failure.message });
      this.empty.hidden = false;
      return;
    }
    this.render(data.entries || []);
  }

  render(entries) {
    const sorted = [...entries].sort((a, b) => String(b.ts).localeCompare(String(a.ts)) || b.id - a.id);
    const active = activeRestrictions(sorted);
    const me = this.app.me();
    this.list.replaceChildren(
      ...sorted.map((entry) => {
        const undo = active.has(entry.id) && (entry.action === "mute" || canRunRoom(me))
          ? h("button", {
              type: "button",
              class: "link-button",
              dataset: { undo: entry.action === "mute" ? "unmute" : "unban", user: String(entry.target.id), name: entry.target.name },
              text: entry.action === "mute" ? gettext("Unmute") : gettext("Unban"),
            })
          : null;
        return h(
          "li",
          { class: `modlog-entry modlog-${entry.action}`, dataset: { entryId: String(entry.id) } },
          h("time", { class: "msg-time", datetime: entry.ts, title: formatDateTime(entry.ts), text: formatTime(entry.ts) }),
          h("span", { class: "modlog-text", text: describeLogEntry(entry) }),
          entry.reason ? h("span", { class: "modlog-reason", text: entry.reason }) : null,
          undo,
        );
      }),
    );
    this.empty.hidden = sorted.length > 0;
    this.empty.textContent = gettext("Nothing yet: mutes, kicks, bans, deletions and slow mode changes show up here.");
  }

  async #undo(button) {
    button.disabled = true;
    try {
      await this.app.commands.run({ type: button.dataset.undo, user: Number(button.dataset.user) });
      const name = button.dataset.name;
      this.app.toast(format(button.dataset.undo === "unmute" ? gettext("%(name)s can chat again.") : gettext("%(name)s is no longer banned."), { name }), "ok");
    } catch (failure) {
      button.disabled = false;
      this.app.toast(failure.detail, "error");
    }
  }
}
