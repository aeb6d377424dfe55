/**
 * The viewer's chat settings, kept in this browser (localStorage): timestamps on or
 * off, a 24-hour clock, the text size. The page reads them through `prefs`; change()
 * stores one and tells the listeners.
 */
const KEY = "chatsite.prefs";
export const FONT_SIZES = ["small", "medium", "large"];
// hour24 null: the clock of the page's language (24-hour in Chinese, 12-hour in English).
const DEFAULTS = Object.freeze({ timestamps: true, hour24: null, fontSize: "medium" });

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) || "{}");
    return {
      timestamps: typeof saved.timestamps === "boolean" ? saved.timestamps : DEFAULTS.timestamps,
      hour24: typeof saved.hour24 === "boolean" ? saved.hour24 : DEFAULTS.hour24,
      fontSize: FONT_SIZES.includes(saved.fontSize) ? saved.fontSize : DEFAULTS.fontSize,
    };
  } catch {
    // Storage off (private mode) or junk in it: the defaults.
    return { ...DEFAULTS };
  }
}

export const prefs = load();
const listeners = new Set();

export function onChange(listener) {
  listeners.add(listener);
}

export function change(name, value) {
  if (!(name in DEFAULTS)) return;
  prefs[name] = value;
  try {
    localStorage.setItem(KEY, JSON.stringify(prefs));
  } catch {
    // Not kept past this page; it still applies now.
  }
  for (const listener of listeners) listener(prefs, name);
}
