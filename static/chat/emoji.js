/**
 * The emoji picker by the composer: a bundled list (no external assets, no requests),
 * inserted at the caret. Arrow keys move in the grid; Enter or a click inserts and the
 * picker stays open for another; Esc closes it.
 */
import { gettext } from "./i18n.js";
import { h } from "./render.js";
import { emoteImage } from "./emotes.js";

// Groups in the order people reach for them in a live chat.
export const EMOJI = [
  ["smileys", "😀 😁 😂 🤣 😃 😄 😅 😆 😉 😊 😋 😎 😍 🥰 😘 🙂 🤗 🤩 🤔 🤨 😐 😑 😶 🙄 😏 😣 😥 😮 🤐 😯 😪 😫 🥱 😴 😌 😛 😜 😝 🤤 😒 😓 😔 😕 🙃 🤑 😲 🙁 😖 😞 😟 😤 😢 😭 😦 😧 😨 😩 🤯 😬 😰 😱 🥵 🥶 😳 🤪 😵 🥴 😠 😡 🤬 😷 🤒 🤕 🤢 🤮 🤧 😇 🥳 🥺 🤠 🤡 🤥 🤫 🤭 🧐 🤓 😈 👻 💀 🤖 👽 💩"],
  ["gestures", "👍 👎 👏 🙌 👐 🤲 🤝 🙏 ✌️ 🤞 🤟 🤘 👌 🤌 🤏 👈 👉 👆 👇 ☝️ ✋ 🤚 🖐️ 🖖 👋 🤙 💪 🫶 ✍️ 👀 🧠"],
  ["hearts", "❤️ 🧡 💛 💚 💙 💜 🖤 🤍 🤎 💔 ❣️ 💕 💞 💓 💗 💖 💘 💝"],
  ["things", "🔥 ✨ 🌟 ⭐ 💯 🎉 🎊 🎁 🏆 🥇 🎮 🕹️ 🎧 🎤 🎵 🎶 📺 📷 💡 💰 💎 🪙 🚀 ⚡ 💥 💤 💬 ❓ ❗ ✅ ❌ ⏰ 🍕 🍔 🍟 🍿 🍩 🍪 🍰 🍺 🍻 🥂 ☕ 🧋 🍜 🍣"],
  ["nature", "🐶 🐱 🐭 🐹 🐰 🦊 🐻 🐼 🐨 🐯 🦁 🐮 🐷 🐸 🐵 🐔 🐧 🐦 🦄 🐝 🦋 🐢 🐍 🐙 🐬 🐳 🌈 ☀️ 🌙 ⛄ 🌸 🌹 🌻 🍀 🌵"],
].map(([group, list]) => [group, list.split(" ")]);

const COLUMNS = 8;

function groupLabel(group) {
  return {
    smileys: gettext("Smileys"),
    gestures: gettext("Gestures"),
    hearts: gettext("Hearts"),
    things: gettext("Things"),
    nature: gettext("Animals and nature"),
  }[group];
}

/** Insert `text` at the caret of `input` (replacing a selection), as typing would. */
export function insertAtCaret(input, text) {
  const start = input.selectionStart ?? input.value.length;
  const end = input.selectionEnd ?? start;
  input.setRangeText(text, start, end, "end");
  input.dispatchEvent(new Event("input", { bubbles: true }));
}

export class EmojiPicker {
  /** loadEmotes(): the room's emotes, [{code, url}], offered before the emoji. */
  constructor({ button, input, popover, loadEmotes = null }) {
    this.button = button;
    this.input = input;
    this.popover = popover;
    this.loadEmotes = loadEmotes;
    this.emotes = [];
    this.#refreshEmotes();
    button?.addEventListener("click", () => {
      this.popover.toggle(button, this.#grid(), { placement: "above", label: gettext("Emoji") });
      // Emotes added meanwhile show the next time the picker opens.
      this.#refreshEmotes();
    });
  }

  async #refreshEmotes() {
    if (this.loadEmotes) this.emotes = await this.loadEmotes();
  }

  #emoteSection(cells) {
    if (!this.emotes.length) return null;
    const id = "emoji-group-room";
    const buttons = this.emotes.map(({ code, url }) => {
      const cell = h("button", { type: "button", class: "emoji-cell emote-cell", tabindex: "-1", "aria-label": code, title: code }, emoteImage(code, url));
      cell.addEventListener("click", () => insertAtCaret(this.input, code));
      cells.push(cell);
      return cell;
    });
    return h("section", { class: "emoji-group", "aria-labelledby": id },
      h("h3", { class: "emoji-group-title", id, text: gettext("This room's emotes") }),
      h("div", { class: "emoji-grid", role: "group", "aria-labelledby": id }, ...buttons));
  }

  #grid() {
    const cells = [];
    const roomSection = this.#emoteSection(cells);
    const sections = EMOJI.map(([group, list]) => {
      const id = `emoji-group-${group}`;
      const buttons = list.map((emoji) => {
        const cell = h("button", { type: "button", class: "emoji-cell", tabindex: "-1", "aria-label": emoji, text: emoji });
        cell.addEventListener("click", () => insertAtCaret(this.input, emoji));
        cells.push(cell);
        return cell;
      });
      return h("section", { class: "emoji-group", "aria-labelledby": id },
        h("h3", { class: "emoji-group-title", id, text: groupLabel(group) }),
        h("div", { class: "emoji-grid", role: "group", "aria-labelledby": id }, ...buttons));
    });
    cells[0].tabIndex = 0;
    cells[0].setAttribute("autofocus", "");
    const root = h("div", { class: "emoji-picker", id: "emoji-picker" }, roomSection, ...sections);
    root.addEventListener("keydown", (event) => {
      const at = cells.indexOf(document.activeElement);
      if (at < 0) return;
      const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: COLUMNS, ArrowUp: -COLUMNS }[event.key];
      if (step === undefined) return;
      event.preventDefault();
      const next = cells[Math.max(0, Math.min(cells.length - 1, at + step))];
      cells[at].tabIndex = -1;
      next.tabIndex = 0;
      next.focus();
    });
    return root;
  }
}
