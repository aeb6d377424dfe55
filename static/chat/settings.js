/**
 * The chat settings popover: timestamps on or off, 24-hour clock, text size. Kept in
 * this browser (prefs.js) and applied to the page at once.
 */
import { gettext } from "./i18n.js";
import { FONT_SIZES, change, prefs } from "./prefs.js";
import { h } from "./render.js";

/** Put the stored settings on the page (CSS reads these attributes). */
export function applyPrefs(root = document.documentElement) {
  root.dataset.timestamps = prefs.timestamps ? "on" : "off";
  root.dataset.fontSize = prefs.fontSize;
}

/** Whether times show on a 24-hour clock now: the setting, else the page language's habit. */
function uses24Hours() {
  if (prefs.hour24 != null) return prefs.hour24;
  const probe = new Intl.DateTimeFormat(document.documentElement.lang || undefined, { hour: "numeric" }).resolvedOptions();
  return probe.hourCycle === "h23" || probe.hourCycle === "h24";
}

export class ChatSettings {
  constructor({ button, popover, onChange }) {
    this.button = button;
    this.popover = popover;
    this.onChange = onChange;
    applyPrefs();
    button?.addEventListener("click", () => this.popover.toggle(button, this.#form(), { label: gettext("Chat settings") }));
  }

  #form() {
    const check = (id, label, checked, onToggle) => {
      const input = h("input", { type: "checkbox", id, checked });
      input.addEventListener("change", () => onToggle(input.checked));
      return h("label", { class: "setting-row", for: id }, input, h("span", { text: label }));
    };
    const sizes = {
      small: gettext("Small"),
      medium: gettext("Medium"),
      large: gettext("Large"),
    };
    const sizeInputs = FONT_SIZES.map((size) => {
      const input = h("input", { type: "radio", name: "font-size", value: size, checked: prefs.fontSize === size });
      input.addEventListener("change", () => this.#set("fontSize", size));
      return h("label", {}, input, h("span", { text: sizes[size] }));
    });
    return h(
      "form",
      { class: "settings-form", id: "settings-form", role: "group", "aria-label": gettext("Chat settings") },
      h("div", { class: "popover-head" }, h("span", { class: "popover-title", text: gettext("Chat settings") })),
      check("setting-timestamps", gettext("Show timestamps"), prefs.timestamps, (on) => this.#set("timestamps", on)),
      check("setting-hour24", gettext("24-hour clock"), uses24Hours(), (on) => this.#set("hour24", on)),
      h("fieldset", { class: "segmented segmented-small setting-sizes" },
        h("legend", { class: "setting-legend", text: gettext("Text size") }),
        ...sizeInputs),
    );
  }

  #set(name, value) {
    change(name, value);
    applyPrefs();
    this.onChange?.(name);
  }
}
